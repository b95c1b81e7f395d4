"""The claim statements on real databases: disjoint claims under a race, leases, expiry."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from models import ScheduledStream, StreamState, WorkerHeartbeat
from models.db import db_now, get_sessionmaker
from tests.conftest import make_due
from worker.bookings import booking, transitions
from worker.lease.claims import Claim
from worker.settings import Settings
from worker.start import claims

S = ScheduledStream


def test_claim_takes_due_rows_within_the_lookahead_only(settings, book) -> None:
    soon, later = book(), book()
    make_due(settings.database_url, soon.id, at=timedelta(seconds=3))
    make_due(settings.database_url, later.id, at=timedelta(seconds=30))
    with get_sessionmaker(settings.database_url).begin() as s:
        now = db_now(s)
        got = claims.claim_due(s, now, lookahead=5, lease=60, batch=10)
    assert [c.row_id for c in got] == [soon.id]
    with get_sessionmaker(settings.database_url)() as s:
        row = s.get(S, soon.id)
        assert row.state == StreamState.STARTING
        assert row.claim_token == got[0].token
        # The lease outlives the task's ETA, however early the row was claimed.
        assert row.lease_expires_at >= row.due_at + timedelta(seconds=60)
        assert s.get(S, later.id).state == StreamState.SCHEDULED


def test_a_second_claim_finds_nothing(settings, book) -> None:
    stream = book()
    make_due(settings.database_url, stream.id)
    with get_sessionmaker(settings.database_url).begin() as s:
        first = claims.claim_due(s, db_now(s), lookahead=5, lease=60, batch=10)
    with get_sessionmaker(settings.database_url).begin() as s:
        second = claims.claim_due(s, db_now(s), lookahead=5, lease=60, batch=10)
    assert len(first) == 1 and second == []


def test_racing_claimers_on_postgres_take_disjoint_rows(pg_url) -> None:

    settings = Settings.from_env(
        {
            "LIVESTREAMS_DATABASE_URL": pg_url,
            "CLOUDFLARE_ACCOUNT_ID": "a",
            "REALTIMEKIT_APP_ID": "b",
        }
    )

    with get_sessionmaker(pg_url).begin() as s:
        ids = [
            booking.schedule(
                s, settings, meeting_id=str(uuid.uuid4()), at=datetime.now(UTC) + timedelta(hours=1)
            ).stream.id
            for _ in range(300)
        ]
    make_due(pg_url, ids)
    results: list[list[claims.Claim]] = []
    barrier = threading.Barrier(6)

    def claimer() -> None:
        barrier.wait()
        for _ in range(10):
            with get_sessionmaker(pg_url).begin() as s:
                results.append(claims.claim_due(s, db_now(s), lookahead=5, lease=60, batch=20))

    threads = [threading.Thread(target=claimer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [c.row_id for batch in results for c in batch]
    assert len(claimed) == len(set(claimed)) == 300


def reap(s, now, *, owner_timeout: float | None = 5.0, lease: float = 60) -> list[Claim]:
    return claims.reap(s, now, lease=lease, batch=10, pickup_grace=5.0, owner_timeout=owner_timeout)


def test_a_claim_no_run_took_up_is_sent_again_after_the_pickup_grace(settings, book) -> None:
    """Its message was lost with the broker, or sits in a killed worker's prefetch, or is
    only late: seconds, not a lease, later it is handed out again under the same token, and
    whichever message comes first starts it, once."""
    stream = book()
    make_due(settings.database_url, stream.id)
    with get_sessionmaker(settings.database_url).begin() as s:
        (claim,) = claims.claim_due(s, db_now(s), lookahead=0, lease=60, batch=10)
    with get_sessionmaker(settings.database_url).begin() as s:
        now = db_now(s)
        assert reap(s, now + timedelta(seconds=4)) == []  # within the grace
        later = now + timedelta(seconds=6)
        (again,) = reap(s, later)
    assert again.row_id == stream.id and again.token == claim.token
    owner = uuid.uuid4()
    with get_sessionmaker(settings.database_url).begin() as s:
        number, renewed = claims.confirm_claim(s, stream.id, again.token, later, lease=60,
                                               owner=owner)  # fmt: skip
        assert number == 1 and renewed != claim.token
        # A claim is good for one run: the other message confirms nothing.
        assert claims.confirm_claim(s, stream.id, claim.token, later, lease=60, owner=owner) is None
    with get_sessionmaker(settings.database_url)() as s:
        # No run had taken it up: nothing says the booking itself is at fault.
        assert s.get(S, stream.id).reclaims == 0


def _confirmed(settings, stream_id: uuid.UUID, owner: uuid.UUID, beat_at=None) -> datetime:
    """Claim and confirm as a run of ``owner`` would; ``owner`` last beat at ``beat_at``."""
    make_due(settings.database_url, stream_id)
    with get_sessionmaker(settings.database_url).begin() as s:
        now = db_now(s)
        s.add(WorkerHeartbeat(id=owner, hostname="h", pid=1, beat_at=beat_at or now))
        (claim,) = claims.claim_due(s, now, lookahead=0, lease=60, batch=10)
        assert claims.confirm_claim(s, stream_id, claim.token, now, lease=60, owner=owner)
    return now


def test_a_claim_whose_owner_stopped_beating_is_taken_back_in_seconds(settings, book) -> None:
    stream, owner = book(), uuid.uuid4()
    now = _confirmed(settings, stream.id, owner)
    with get_sessionmaker(settings.database_url).begin() as s:
        assert reap(s, now + timedelta(seconds=4)) == []  # it beat 4 s ago: alive
        # Owners not judged (the dispatcher just came back from an outage): kept.
        assert reap(s, now + timedelta(seconds=30), owner_timeout=None) == []
        (reaped,) = reap(s, now + timedelta(seconds=6))
    assert reaped.row_id == stream.id
    with get_sessionmaker(settings.database_url)() as s:
        row = s.get(S, stream.id)
        assert row.claim_owner is None and row.claim_token == reaped.token


def test_a_claim_whose_owner_beats_is_kept_until_its_lease_runs_out(settings, book) -> None:
    """An owner that beats may be inside its call: never taken, however long past due, until
    the lease (which outlives the longest call) runs out."""
    stream, owner = book(), uuid.uuid4()
    now = _confirmed(settings, stream.id, owner)
    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(update(WorkerHeartbeat).values(beat_at=now + timedelta(seconds=59)))
        assert reap(s, now + timedelta(seconds=59)) == []
        lease_end = s.get(S, stream.id).lease_expires_at
        (reaped,) = reap(s, lease_end + timedelta(seconds=1))
    assert reaped.row_id == stream.id


def test_a_row_taken_back_too_often_fails_with_the_reason(settings, book) -> None:
    stream, owner = book(), uuid.uuid4()
    now = _confirmed(settings, stream.id, owner)
    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(update(S).where(S.id == stream.id).values(reclaims=claims.MAX_RECLAIMS))
        later = now + timedelta(seconds=10)
        assert reap(s, later) == []
        assert claims.fail_reclaimed(s, later, owner_timeout=5.0) == 1
    with get_sessionmaker(settings.database_url)() as s:
        row = s.get(S, stream.id)
        assert row.state == StreamState.FAILED and row.claim_token is None
        assert f"vanished {claims.MAX_RECLAIMS + 1} times" in row.last_error


def test_a_claim_no_run_took_up_is_handed_out_again_however_often(settings, book) -> None:
    """An overloaded pool, not a bad booking: the message waits past the pickup grace again
    and again. Each time the claim is handed out anew, never failed for it, and not counted;
    a run that took it up and vanished is."""
    stream = book()
    make_due(settings.database_url, stream.id)
    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(update(S).where(S.id == stream.id).values(reclaims=claims.MAX_RECLAIMS))
        now = db_now(s)
        claims.claim_due(s, now, lookahead=0, lease=60, batch=10)
    for seconds in (10, 25, 60):  # each wait longer than the one before: sent again each time
        with get_sessionmaker(settings.database_url).begin() as s:
            later = now + timedelta(seconds=seconds)
            assert claims.fail_reclaimed(s, later, owner_timeout=5.0) == 0
            (reaped,) = reap(s, later)
    with get_sessionmaker(settings.database_url)() as s:
        row = s.get(S, stream.id)
        assert row.state == StreamState.STARTING and row.reclaims == claims.MAX_RECLAIMS
        assert row.claim_token == reaped.token
    owner = uuid.uuid4()
    with get_sessionmaker(settings.database_url).begin() as s:
        at = now + timedelta(seconds=60)
        s.add(WorkerHeartbeat(id=owner, hostname="h", pid=1, beat_at=at))
        assert claims.confirm_claim(s, stream.id, reaped.token, at, lease=60, owner=owner)
    with get_sessionmaker(settings.database_url).begin() as s:  # its run then vanished
        assert claims.fail_reclaimed(s, at + timedelta(seconds=10),
                                     owner_timeout=5.0) == 1  # fmt: skip


def test_untried_rows_past_their_deadline_are_missed(settings, book) -> None:
    stream, tried = book(), book()
    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(update(S).where(S.id == tried.id).values(attempts=1, state="retrying"))
    with get_sessionmaker(settings.database_url).begin() as s:
        row = s.get(S, stream.id)
        after = row.start_deadline + timedelta(hours=2)
        assert claims.expire_untried(s, after) == 1
    with get_sessionmaker(settings.database_url)() as s:
        assert s.get(S, stream.id).state == StreamState.MISSED
        assert "deadline" in s.get(S, stream.id).last_error
        # A row that was tried is left for the start task to reconcile, never guessed at.
        assert s.get(S, tried.id).state == StreamState.RETRYING


def test_cancel_loses_cleanly_to_a_claim(settings, book) -> None:
    stream = book()
    make_due(settings.database_url, stream.id)
    with get_sessionmaker(settings.database_url).begin() as s:
        claims.claim_due(s, db_now(s), lookahead=0, lease=60, batch=10)
    with get_sessionmaker(settings.database_url).begin() as s:
        ok = transitions.transition(
            s,
            stream.id,
            (StreamState.SCHEDULED, StreamState.RETRYING),
            db_now(s),
            state="cancelled",
        )
    assert not ok
    with get_sessionmaker(settings.database_url)() as s:
        assert s.scalar(select(S.state).where(S.id == stream.id)) == StreamState.STARTING
