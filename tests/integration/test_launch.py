"""Launches (worker.start.launch), run in-process against the fake API over real sockets, on
SQLite and PostgreSQL: everything but the request is done ahead of the instant."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from models import ScheduledStream, StartAttempt, StatusEvent, StreamState, UpstreamPause
from models.db import db_now, get_sessionmaker
from tests.conftest import make_due
from worker.lease.foreign import Foreign
from worker.settings import Secret
from worker.start import claims
from worker.start.flow import Starter
from worker.start.launch import Launcher
from worker.start.results import Results
from worker.start.runs import Job
from worker.start.timer import LaunchTimer
from worker.upstream import pacing
from worker.upstream.responses import Livestream

S = ScheduledStream


@pytest.fixture
def launcher(settings, fake_api, rtk_client):
    factory = get_sessionmaker(settings.database_url)
    starter = Starter(factory, settings, rtk_client(), owner=uuid.uuid4())
    launcher = Launcher(
        factory,
        settings,
        starter,
        LaunchTimer(),
        Results(starter.record, settings.cadence.first_check, settings.claims.lease),
        Foreign(factory),
    )
    yield launcher
    launcher.close(10.0)


def claim_all(
    settings, ids, in_seconds: float, apart: float = 0.1
) -> tuple[uuid.UUID, dict[uuid.UUID, float]]:
    """Make the bookings due ``in_seconds`` from now (``apart`` seconds apart) and claim
    them as one tick would: one token. Returns it and each booking's instant (epoch s)."""
    factory = get_sessionmaker(settings.database_url)
    instants = {}
    with factory.begin() as s:
        now = db_now(s)
        for n, ident in enumerate(ids):
            instants[ident] = make_due(s, ident, now + timedelta(seconds=in_seconds + n * apart))
    with factory.begin() as s:
        got = claims.claim_due(s, db_now(s), lookahead=in_seconds + 5, lease=60, batch=100)
    assert {c.row_id for c in got} == set(ids) and len({c.token for c in got}) == 1
    return got[0].token, {i: at.timestamp() for i, at in instants.items()}


def rows(settings, ids) -> dict[uuid.UUID, ScheduledStream]:
    with get_sessionmaker(settings.database_url)() as s:
        return {r.id: r for r in s.scalars(select(S).where(S.id.in_(ids)))}


def attempts(settings, stream_id) -> list[tuple[str, str | None]]:
    with get_sessionmaker(settings.database_url)() as s:
        query = select(StartAttempt).where(StartAttempt.stream_id == stream_id)
        return [(a.action, a.outcome) for a in s.scalars(query.order_by(StartAttempt.number))]


def test_a_launch_is_written_ahead_and_each_request_leaves_at_its_instant(
    settings, launcher, book, fake_api
) -> None:
    streams = [book() for _ in range(3)]
    ids = [s.id for s in streams]
    token, instants = claim_all(settings, ids, in_seconds=1.5)
    report = launcher.run(token, ids)
    assert (report.confirmed, report.single, report.stale) == (3, 0, 0)
    # Before any instant: every claim is confirmed by this process, every call written ahead,
    # and nothing has been sent.
    before = rows(settings, ids)
    assert fake_api.starts_received == 0
    for ident in ids:
        assert before[ident].state == StreamState.STARTING and before[ident].attempts == 1
        assert before[ident].claim_owner == launcher.starter.owner
        assert before[ident].claim_token != token
        assert attempts(settings, ident) == [("start", None)]
    assert launcher.drain(15.0)
    after = rows(settings, ids)
    for stream in streams:
        assert after[stream.id].state == StreamState.STARTED
        assert attempts(settings, stream.id) == [("start", "started")]
        (request,) = [r for r in fake_api.requests if r.meeting_id == str(stream.meeting_id)]
        assert request.arrived >= instants[stream.id] - 0.001  # never before its instant


def test_the_same_launch_twice_starts_each_booking_once(settings, launcher, book, fake_api):
    ids = [book().id for _ in range(2)]
    token, _ = claim_all(settings, ids, in_seconds=0.5)
    assert launcher.run(token, ids).confirmed == 2
    again = launcher.run(token, ids)  # a replayed message: the token was renewed
    assert (again.confirmed, again.single, again.stale) == (0, 0, 2)
    assert launcher.drain(15.0)
    assert fake_api.starts_received == 2
    assert all(r.state == StreamState.STARTED for r in rows(settings, ids).values())


def test_a_claim_with_an_unclear_earlier_call_is_reconciled_first(
    settings, launcher, book, fake_api
) -> None:
    plain, unclear = book(), book()
    token, _ = claim_all(settings, [plain.id, unclear.id], in_seconds=0.3)
    with get_sessionmaker(settings.database_url).begin() as s:  # a run that died mid-call
        s.execute(update(S).where(S.id == unclear.id).values(attempts=1))
        s.add(
            StartAttempt(
                stream_id=unclear.id, number=1, action="start", claim_token=token,
                sent_at=db_now(s) - timedelta(seconds=30),
            )
        )  # fmt: skip
    report = launcher.run(token, [plain.id, unclear.id])
    assert (report.confirmed, report.single) == (1, 1)
    assert launcher.drain(15.0)
    assert attempts(settings, plain.id) == [("start", "started")]
    assert attempts(settings, unclear.id) == [
        ("start", "ambiguous"),
        ("reconcile", "absent"),
        ("start", "started"),
    ]
    assert fake_api.starts_received == 2


def test_a_paused_token_sends_nothing_and_the_booking_keeps_its_place(
    settings, launcher, book, fake_api
) -> None:
    stream = book()
    token, instants = claim_all(settings, [stream.id], in_seconds=0.2)
    with get_sessionmaker(settings.database_url).begin() as s:
        until = db_now(s) + timedelta(seconds=60)
        s.add(
            UpstreamPause(
                token_hash=pacing.token_hash(settings.upstream.api_token), paused_until=until
            )
        )
    report = launcher.run(token, [stream.id])
    assert (report.confirmed, report.single) == (0, 1)
    assert launcher.drain(15.0)
    got = rows(settings, [stream.id])[stream.id]
    # It keeps its due instant (its place in the queue); the dispatcher holds every claim
    # until the pause ends (worker.upstream.policy.before_call).
    assert got.state == StreamState.RETRYING and got.due_at.timestamp() == instants[stream.id]
    assert "waiting for the API rate limit" in got.last_error
    assert fake_api.starts_received == 0


def test_starts_prepared_before_a_429_are_not_sent_into_its_pause(
    settings, launcher, book, fake_api
) -> None:
    first, *rest = streams = [book() for _ in range(3)]
    ids = [s.id for s in streams]
    # The first instant's answer is a 429 that pauses the token for 30 s; the two others
    # were prepared with it, due 0.6 s and 1.2 s later.
    fake_api.script("start", {"status": 429, "retry_after": "30"}, meeting_id=str(first.meeting_id))
    token, _ = claim_all(settings, ids, in_seconds=0.3, apart=0.6)
    assert launcher.run(token, ids).confirmed == 3
    assert launcher.drain(15.0)
    assert fake_api.starts_received == 1  # only the first went out
    got = rows(settings, ids)
    for stream in rest:
        row = got[stream.id]
        assert row.state == StreamState.RETRYING
        assert "not sent: the API token is paused" in row.last_error
        # Due again when the pause ends, not before.
        assert row.due_at >= got[first.id].due_at - timedelta(seconds=1)
        assert attempts(settings, stream.id) == [("start", "retryable")]
    assert attempts(settings, first.id) == [("start", "retryable")]


def test_a_launch_this_database_never_heard_of_names_the_likely_cause_once_a_minute(
    settings, launcher, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="worker.lease.foreign")
    for _ in range(3):
        report = launcher.run(uuid.uuid4(), [uuid.uuid4(), uuid.uuid4()])
        assert (report.confirmed, report.single, report.stale) == (0, 0, 2)
    lines = [r.getMessage() for r in caplog.records if r.name == "worker.lease.foreign"]
    assert len(lines) == 1
    assert "another deployment probably shares this broker database" in lines[0]


def test_a_claim_taken_back_before_its_launch_ran_is_not_started(
    settings, launcher, book, fake_api
) -> None:
    stream = book()
    token, _ = claim_all(settings, [stream.id], in_seconds=0.2)
    with get_sessionmaker(settings.database_url).begin() as s:  # reaped meanwhile
        s.execute(update(S).where(S.id == stream.id).values(claim_token=uuid.uuid4()))
    report = launcher.run(token, [stream.id])
    assert (report.confirmed, report.single, report.stale) == (0, 0, 1)
    time.sleep(0.5)
    assert fake_api.starts_received == 0


def test_results_are_written_together_and_a_lost_claim_is_left_to_its_next_claim(
    settings, launcher, book
) -> None:
    kept, lost = book(), book()
    token, _ = claim_all(settings, [kept.id, lost.id], in_seconds=0)
    factory = get_sessionmaker(settings.database_url)
    with factory.begin() as s:
        renewed, confirmed = claims.confirm_launch(
            s, token, [kept.id, lost.id], db_now(s), lead=5, lease=60,
            owner=launcher.starter.owner, token_key="k",
        )  # fmt: skip
    assert len(confirmed) == 2
    with factory.begin() as s:  # the reaper took one back meanwhile
        s.execute(update(S).where(S.id == lost.id).values(claim_token=uuid.uuid4()))
    for n, row in enumerate(confirmed):
        found = Livestream(
            id=f"ls-{n}", status="INVOKED", ingest_server="rtmps://in", playback_url="https://p",
            stream_key=Secret(f"key-{n}"),
        )  # fmt: skip
        launcher.results.add(Job.of(row, row.id, renewed, first_unclear=None), 1, found, 0.01)
    assert launcher.drain(15.0)
    got = rows(settings, [kept.id, lost.id])
    by_id = {row.id: f"ls-{n}" for n, row in enumerate(confirmed)}
    assert got[kept.id].state == StreamState.STARTED
    assert got[kept.id].livestream_id == by_id[kept.id] and got[kept.id].claim_token is None
    assert got[lost.id].state == StreamState.STARTING and got[lost.id].livestream_id is None
    # Both calls are closed with the livestream they created: the lost one is adopted by the
    # reconcile of its next claim, never started twice.
    assert attempts(settings, kept.id) == [("start", "started")]
    assert attempts(settings, lost.id) == [("start", "started")]
    with factory() as s:
        timeline = s.scalars(select(StatusEvent.stream_id).where(StatusEvent.source == "start"))
        assert list(timeline) == [kept.id]


def test_results_the_database_refused_are_written_once_it_is_back(
    settings, launcher, book, fake_api, monkeypatch
) -> None:
    stream = book()
    token, _ = claim_all(settings, [stream.id], in_seconds=0.1)
    write = launcher.results.recorder.write
    refused = []

    def away(fn):  # the database is away for the first two tries
        if len(refused) < 2:
            refused.append(1)
            raise OperationalError("UPDATE", {}, Exception("the database is away"))
        return write(fn)

    monkeypatch.setattr(launcher.results.recorder, "write", away)
    assert launcher.run(token, [stream.id]).confirmed == 1
    assert launcher.drain(15.0)
    assert len(refused) == 2
    got = rows(settings, [stream.id])[stream.id]
    (created,) = fake_api.created[str(stream.meeting_id)]
    assert got.state == StreamState.STARTED and got.livestream_id == created.id
    assert attempts(settings, stream.id) == [("start", "started")]
