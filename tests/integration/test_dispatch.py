"""One dispatch tick in-process: what it claims, paces, skips and records."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from models import ScheduledStream, StartAttempt
from models.db import db_now, get_sessionmaker
from tests.conftest import make_due
from worker import claims, pacing, runtime, tasks
from worker.claims import Claim
from worker.dispatch import last_tick, tick
from worker.settings import RateLimit

S = ScheduledStream


def _due(settings, streams, seconds: float = 0.0) -> None:
    with get_sessionmaker(settings.database_url).begin() as s:
        now = db_now(s)
        for i, stream in enumerate(streams):
            make_due(s, stream.id, at=now + timedelta(seconds=seconds + i * 0.001))


def test_tick_claims_due_rows_in_order_and_records_a_heartbeat(settings, book) -> None:
    streams = [book() for _ in range(5)]
    _due(settings, reversed(streams), seconds=1)
    got: list[Claim] = []
    report = tick(get_sessionmaker(settings.database_url), settings, got.append)
    assert report.claimed == report.enqueued == 5
    assert [c.stream_id for c in got] == [s.id for s in reversed(streams)]
    assert all(c.due_at > report.now for c in got)  # each waits for its own ETA
    with get_sessionmaker(settings.database_url)() as s:
        assert last_tick(s) == report.now


def test_a_failed_enqueue_leaves_the_claim_for_the_reaper(settings, book) -> None:
    stream = book()
    _due(settings, [stream])

    def broken(claim: Claim) -> None:
        raise ConnectionError("broker down")

    report = tick(get_sessionmaker(settings.database_url), settings, broken)
    assert report.claimed == 1 and report.enqueued == 0
    with get_sessionmaker(settings.database_url)() as s:
        row = s.get(S, stream.id)
        assert row.state == "starting"
        later = row.lease_expires_at + timedelta(seconds=1)
    with get_sessionmaker(settings.database_url).begin() as s:
        (reaped,) = claims.reap_expired(s, later, lease=60, batch=10)
    assert reaped.stream_id == stream.id


def test_pacing_claims_no_more_than_the_rate_budget(settings, book) -> None:
    streams = [book() for _ in range(12)]
    _due(settings, streams)
    paced = replace(settings, rate_limit=RateLimit(10, 60.0))  # 90 % of 10 = 9 per minute
    with get_sessionmaker(settings.database_url).begin() as s:
        now = db_now(s)
        for i in range(4):  # four calls already made in this window
            s.add(
                StartAttempt(
                    stream_id=streams[-1].id,
                    number=i + 1,
                    action="start",
                    sent_at=now,
                    outcome="retryable",
                )
            )
    got: list[Claim] = []
    report = tick(get_sessionmaker(settings.database_url), paced, got.append)
    assert report.budget == 5 and len(got) == 5
    # The claimed rows count against the budget until they call: the next tick claims none.
    assert tick(get_sessionmaker(settings.database_url), paced, got.append).claimed == 0


def test_a_rate_limit_pause_stops_claims(settings, book) -> None:
    stream = book()
    _due(settings, [stream])
    with get_sessionmaker(settings.database_url).begin() as s:
        key = pacing.token_hash(settings.api_token)
        pacing.pause(s, key, db_now(s) + timedelta(seconds=30))
        pacing.pause(s, key, db_now(s) + timedelta(seconds=5))  # never shortens a pause
    report = tick(get_sessionmaker(settings.database_url), settings, lambda c: None)
    assert report.claimed == 0 and report.paused_until is not None
    assert report.paused_until > report.now + timedelta(seconds=20)


def test_a_database_outage_costs_one_tick_and_one_log_line(monkeypatch, caplog) -> None:
    monkeypatch.setenv("LIVESTREAMS_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    runtime.install(None)  # built again from this environment
    try:
        with caplog.at_level(logging.WARNING, logger="worker.tasks"):
            assert tasks.dispatch_due() == {"claimed": 0, "reaped": 0, "expired": 0}
    finally:
        runtime.install(None)
    (record,) = [r for r in caplog.records if r.name == "worker.tasks"]
    assert record.action == "dispatch_db_error"
    assert "dispatch tick skipped" in record.getMessage()
