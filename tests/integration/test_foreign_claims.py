"""A run whose claim names no row of this database says, at most once a minute per process,
that another deployment probably shares the broker database (worker.lease.foreign)."""

from __future__ import annotations

import logging
import uuid

import pytest

from models.db import get_sessionmaker
from worker.lease.claims import ClaimKind
from worker.lease.foreign import Foreign

CAUSE = "another deployment probably shares this broker database"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if CAUSE in r.getMessage()]


def test_a_claim_this_database_has_is_not_foreign(settings, book, caplog) -> None:
    foreign = Foreign(get_sessionmaker(settings.database_url), clock=Clock())
    stream = book()
    with caplog.at_level(logging.WARNING):
        assert not foreign.check(ClaimKind.START, [stream.id], uuid.uuid4())
        assert not foreign.check(ClaimKind.TRACK, [stream.id], uuid.uuid4())
        # A booking's id is no webhook delivery's.
        assert foreign.check(ClaimKind.WEBHOOK, [stream.id], uuid.uuid4())
    (line,) = lines(caplog)
    assert line.levelno == logging.WARNING and "webhook run for 1 delivery" in line.getMessage()


def test_foreign_claims_are_named_at_most_once_a_minute(settings, caplog) -> None:
    clock = Clock()
    foreign = Foreign(get_sessionmaker(settings.database_url), clock=clock)
    token = uuid.uuid4()
    with caplog.at_level(logging.WARNING):
        assert foreign.check(ClaimKind.START, [uuid.uuid4(), uuid.uuid4()], token)
        clock.now += 59
        assert not foreign.check(ClaimKind.TRACK, [uuid.uuid4()], token)
        assert not foreign.say(ClaimKind.START, 3, token)
        clock.now += 1
        assert foreign.say(ClaimKind.START, 3, token)
    first, second = lines(caplog)
    assert "start run for 2 booking(s)" in first.getMessage() and str(token) in first.getMessage()
    assert "LIVESTREAMS_BROKER_URL" in second.getMessage()
    assert first.__dict__["action"] == "foreign_claim"
