"""One dispatch tick in-process: what it claims, paces, skips and records."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from models import DispatcherHeartbeat, ScheduledStream, StartAttempt, WorkerHeartbeat
from models.db import db_now, get_sessionmaker
from tests.conftest import make_due, tuned
from worker import runtime, tasks
from worker.bookings import booking
from worker.dispatch import last_tick, tick
from worker.lease.claims import Claim
from worker.settings import RateLimit, Settings
from worker.start import claims
from worker.start.rules import Launch, resend_cap
from worker.upstream import pacing

RESEND_FLOOR = resend_cap(0)

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
    assert [c.row_id for c in got] == [s.id for s in reversed(streams)]
    assert all(c.due_at > report.now for c in got)  # each waits for its own ETA
    with get_sessionmaker(settings.database_url)() as s:
        assert last_tick(s) == report.now


def test_starts_go_out_as_launches_one_message_per_token_and_window(settings, book) -> None:
    streams = [book() for _ in range(4)]
    with get_sessionmaker(settings.database_url).begin() as s:
        now = db_now(s)
    # Well inside one launch window (worker.start.rules.launches: whole seconds of instants).
    into_window = 1.5 - (now.timestamp() % 1)
    _due(settings, streams, seconds=into_window)
    launches: list[Launch] = []
    single: list[Claim] = []
    report = tick(
        get_sessionmaker(settings.database_url), settings, single.append, launch=launches.append
    )
    assert report.claimed == report.enqueued == 4
    assert single == []  # no start goes out on its own
    (launch,) = launches  # one statement's claims, all due within one window
    assert launch.stream_ids == [s.id for s in streams]
    with get_sessionmaker(settings.database_url)() as s:
        tokens = set(s.scalars(select(S.claim_token).where(S.id.in_(launch.stream_ids))))
    assert tokens == {launch.token}


def test_a_launch_the_broker_refused_is_handed_out_again_under_its_token(settings, book) -> None:
    streams = [book() for _ in range(2)]
    _due(settings, streams, seconds=-5)  # overdue, so the pickup grace has passed at once

    def broken(_: Launch) -> None:
        raise ConnectionError("broker down")

    factory = get_sessionmaker(settings.database_url)
    assert tick(factory, settings, lambda c: None, launch=broken).enqueued == 0
    with factory.begin() as s:  # the grace, as if it had passed since the hand-out
        s.execute(update(S).values(claimed_at=db_now(s) - timedelta(seconds=30)))
    again: list[Launch] = []
    assert tick(factory, settings, lambda c: None, launch=again.append).reaped == 2
    assert sorted(i for g in again for i in g.stream_ids) == sorted(s.id for s in streams)


def test_late_claims_are_sent_again_no_faster_than_the_start_lane_takes_them_up(
    settings, book
) -> None:
    ids = [book().id for _ in range(RESEND_FLOOR + 10)]
    factory = get_sessionmaker(settings.database_url)
    with factory.begin() as s:
        make_due(s, ids, timedelta(seconds=-5))
    first: list[Launch] = []
    assert tick(factory, settings, lambda c: None, launch=first.append).claimed == len(ids)
    with factory.begin() as s:  # no run took any up: their messages were lost or are late
        s.execute(update(S).values(claimed_at=db_now(s) - timedelta(seconds=30)))
    again: list[Launch] = []
    assert tick(factory, settings, lambda c: None, launch=again.append).reaped == RESEND_FLOOR
    assert sum(len(g.claims) for g in again) == RESEND_FLOOR


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
        # Taken back seconds after its instant, long before its lease would run out.
        later = row.due_at + timedelta(seconds=settings.claims.pickup_grace + 1)
        assert later < row.lease_expires_at - timedelta(seconds=30)
    with get_sessionmaker(settings.database_url).begin() as s:
        (reaped,) = claims.reap(
            s,
            later,
            lease=60,
            batch=10,
            pickup_grace=settings.claims.pickup_grace,
            owner_timeout=None,
        )
    assert reaped.row_id == stream.id


def test_pacing_claims_no_more_than_the_rate_budget(settings, book) -> None:
    streams = [book() for _ in range(12)]
    _due(settings, streams)
    paced = tuned(
        settings, upstream={"rate_limit": RateLimit(10, 60.0)}
    )  # 90 % of 10 = 9 per minute
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
        key = pacing.token_hash(settings.upstream.api_token)
        pacing.pause(s, key, db_now(s) + timedelta(seconds=30))
        pacing.pause(s, key, db_now(s) + timedelta(seconds=5))  # never shortens a pause
    report = tick(get_sessionmaker(settings.database_url), settings, lambda c: None)
    assert report.claimed == 0 and report.paused_until is not None
    assert report.paused_until > report.now + timedelta(seconds=20)


def test_a_pause_ending_within_the_lookahead_hands_claims_out_for_its_end(settings, book) -> None:
    """The starts leave as the pause ends, not at the first tick after it; the pickup grace
    runs from then, so a claim held for the pause is not taken back meanwhile."""
    stream = book()
    _due(settings, [stream])
    factory = get_sessionmaker(settings.database_url)
    with factory.begin() as s:
        until = db_now(s) + timedelta(seconds=settings.claims.lookahead - 1)
        pacing.pause(s, pacing.token_hash(settings.upstream.api_token), until)
    got: list[Claim] = []
    report = tick(factory, settings, got.append)
    assert report.claimed == 1 and [c.due_at for c in got] == [until]
    with factory.begin() as s:
        later = until + timedelta(seconds=settings.claims.pickup_grace - 1)
        assert (
            claims.reap(
                s,
                later,
                lease=60,
                batch=10,
                pickup_grace=settings.claims.pickup_grace,
                owner_timeout=5,
            )
            == []
        )


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


@pytest.mark.postgres
def test_overlapping_ticks_never_spend_the_budget_twice(pg_url, secret_key, monkeypatch) -> None:
    """Two beats (or a slow tick and the next) overlapping: each used to read the whole budget
    and claim it (budget 9: 9 + 9 claimed). Ticks now take turns."""
    settings = Settings.from_env(
        {"LIVESTREAMS_DATABASE_URL": pg_url, "LIVESTREAMS_SECRET_KEY": secret_key}
    )
    settings = tuned(settings, upstream={"rate_limit": RateLimit(10, 60.0)})  # 90 % of 10 = 9
    factory = get_sessionmaker(pg_url)
    at = datetime.now(UTC) + timedelta(hours=1)
    with factory.begin() as s:
        rows = [
            booking.schedule(
                s, settings, meeting_id=str(uuid.uuid4()), at=at, account_id="a", app_id="b"
            ).stream
            for _ in range(20)
        ]
    _due(settings, rows)
    slow_budget = pacing.budget

    def budget_then_linger(*args, **kwargs) -> int:
        room = slow_budget(*args, **kwargs)
        time.sleep(0.5)  # the other tick reads its budget meanwhile, unless it must wait
        return room

    monkeypatch.setattr(pacing, "budget", budget_then_linger)
    claimed: list[Claim] = []
    ticks = [threading.Thread(target=tick, args=(factory, settings, claimed.append)) for _ in "ab"]
    for t in ticks:
        t.start()
    for t in ticks:
        t.join()
    assert len(claimed) == 9


def test_owners_are_judged_only_after_ticks_ran_long_enough(settings, book) -> None:
    """After an outage every heartbeat is old at once; a live owner must get the time to beat
    again before its claim may be taken."""
    stream, owner = book(), uuid.uuid4()
    _due(settings, [stream])
    factory = get_sessionmaker(settings.database_url)
    with factory.begin() as s:
        now = db_now(s)
        old = now - timedelta(seconds=60)
        s.add(WorkerHeartbeat(id=owner, hostname="h", pid=1, beat_at=old))
        (claim,) = claims.claim_due(s, now, lookahead=0, lease=60, batch=1)
        claims.confirm_claim(s, stream.id, claim.token, now, lease=60, owner=owner)
        # The last tick was a minute ago: the database (or every beat) was away.
        s.add(DispatcherHeartbeat(name="dispatch", last_tick_at=old, running_since=old))
    assert tick(factory, settings, lambda c: None).reaped == 0
    with factory.begin() as s:  # ticks have now run without a gap for longer than the timeout
        since = db_now(s) - timedelta(seconds=settings.claims.owner_timeout + 1)
        s.execute(update(DispatcherHeartbeat).values(running_since=since))
    assert tick(factory, settings, lambda c: None).reaped == 1


def test_the_broker_holds_at_most_a_batch_of_claims_no_run_took_up(settings, book) -> None:
    """A burst waits in the database, in order: a queue longer than runs can take up within
    the pickup grace would have its tail taken back and queued again behind itself."""
    streams = [book() for _ in range(15)]
    _due(settings, streams)
    small = tuned(settings, claims={"batch": 10})
    factory = get_sessionmaker(settings.database_url)
    assert tick(factory, small, lambda c: None).claimed == 10
    assert tick(factory, small, lambda c: None).claimed == 0  # none taken up yet
    with factory.begin() as s:  # a run takes four up
        for claimed in s.scalars(select(S).where(S.state == "starting").limit(4)):
            claimed.claim_owner = uuid.uuid4()
    assert tick(factory, small, lambda c: None).claimed == 4


def _tracked(settings, book, n: int, **values) -> list[uuid.UUID]:
    """``n`` started rows whose next tracking action is due now (``values``: more columns)."""
    ids = [book().id for _ in range(n)]
    with get_sessionmaker(settings.database_url).begin() as s:
        now = db_now(s)
        s.execute(
            update(S)
            .where(S.id.in_(ids))
            .values(state="started", livestream_id="ls", started_at=now, due_at=now, **values)
        )
    return ids


def test_starts_and_stops_come_first_and_checks_leave_room_for_starts_due_soon(
    settings, book
) -> None:
    settings = tuned(
        settings, upstream={"rate_limit": RateLimit(20, 300.0)}
    )  # 18 with the safety margin
    checks = _tracked(settings, book, 5)
    with get_sessionmaker(settings.database_url)() as s:
        stops = _tracked(settings, book, 2, ends_at=db_now(s))
    starts_now = [book() for _ in range(10)]
    _due(settings, starts_now)
    _due(settings, [book() for _ in range(3)], seconds=60)  # inside the rate window
    got: list[Claim] = []
    report = tick(get_sessionmaker(settings.database_url), settings, got.append)
    assert report.claimed == 10 and report.stops == 2
    assert report.checks == 18 - 10 - 2 - 3
    by_kind = {kind: {c.row_id for c in got if c.kind == kind} for kind in ("start", "track")}
    assert by_kind["start"] == {s.id for s in starts_now}
    assert set(stops) <= by_kind["track"] and len(by_kind["track"] & set(checks)) == 3
    # A claimed tracked row keeps its state and its due instant (the task's ETA).
    with get_sessionmaker(settings.database_url)() as s:
        held = s.get(S, stops[0])
        assert held.state == "started" and held.claim_token is not None
        assert held.due_at <= report.now
        assert {c.due_at for c in got if c.kind == "track"} == {report.now}
    # The next tick does not hand the held rows out again.
    again: list[Claim] = []
    tick(get_sessionmaker(settings.database_url), settings, again.append)
    assert not {c.row_id for c in again} & (by_kind["track"])


def test_a_tracked_claim_no_worker_took_up_is_sent_again_after_the_pickup_grace(
    settings, book
) -> None:
    (ident,) = _tracked(settings, book, 1)
    first: list[Claim] = []
    tick(get_sessionmaker(settings.database_url), settings, first.append)
    assert [c.row_id for c in first] == [ident]

    def back(seconds: float, *, due_too: bool) -> None:
        with get_sessionmaker(settings.database_url).begin() as s:
            ago = db_now(s) - timedelta(seconds=seconds)
            values = {"claimed_at": ago, **({"due_at": ago} if due_too else {})}
            s.execute(update(S).where(S.id == ident).values(**values))

    def again() -> list[Claim]:
        got: list[Claim] = []
        report = tick(get_sessionmaker(settings.database_url), settings, got.append)
        assert report.reaped == len(got)
        return got

    # Handed out long ago but not due yet (held for its ETA): not late, not sent again.
    back(settings.claims.pickup_grace + 1, due_too=False)
    assert again() == []
    back(settings.claims.pickup_grace + 1, due_too=True)  # due, and the grace has passed
    (second,) = again()
    assert second.row_id == ident and second.kind == "track"
    assert second.token == first[0].token  # the first message, if only late, still counts


def test_track_runs_take_at_most_half_the_brokers_cap_and_count_against_it(settings, book):
    settings = tuned(settings, claims={"batch": 10})
    _tracked(settings, book, 8)
    first: list[Claim] = []
    tick(get_sessionmaker(settings.database_url), settings, first.append)
    assert len(first) == 5  # half the cap: the other half is the starts'
    starts = [book() for _ in range(8)]
    _due(settings, starts)
    second: list[Claim] = []
    report = tick(get_sessionmaker(settings.database_url), settings, second.append)
    # Five checks wait in the broker, unconfirmed: five places are left, all for starts.
    assert report.claimed == 5 and report.checks == 0
    assert {c.kind for c in second} == {"start"}
