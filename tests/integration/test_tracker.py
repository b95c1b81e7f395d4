"""Following a started livestream: checks, live, not_live, stops, ended upstream; in-process
against the fake API over real sockets, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from models import AttemptAction, ScheduledStream, StartAttempt, StatusEvent, StreamState
from models.db import db_now, get_sessionmaker
from tests.conftest import make_due, tuned
from worker.bookings import booking
from worker.follow import claims as tracking
from worker.follow.flow import Tracker
from worker.start import claims
from worker.start.flow import Starter

S = ScheduledStream


@pytest.fixture
def started(settings, fake_api, rtk_client, book):
    """Book and start a livestream through the real start task: its row, as stored."""

    def start(**fields):
        stream = book(**fields)
        make_due(settings.database_url, stream.id)
        with get_sessionmaker(settings.database_url).begin() as s:
            (got,) = claims.claim_due(s, db_now(s), lookahead=0, lease=60, batch=1)
        starter = Starter(
            get_sessionmaker(settings.database_url), settings, rtk_client(), owner=uuid.uuid4()
        )
        assert starter.run(stream.id, got.token) == "started"
        return row(settings, stream.id)

    return start


def tracker_for(settings, rtk_client, **cadence) -> Tracker:
    changed = tuned(settings, cadence=cadence)
    return Tracker(
        get_sessionmaker(settings.database_url), changed, rtk_client(), owner=uuid.uuid4()
    )


def track(settings, tracker: Tracker, stream_id: uuid.UUID) -> str:
    """Make the row's next tracking action due now, claim it as a tick would, run it."""
    with get_sessionmaker(settings.database_url).begin() as s:
        now = db_now(s)
        s.execute(update(S).where(S.id == stream_id).values(due_at=now - timedelta(seconds=1)))
    with get_sessionmaker(settings.database_url).begin() as s:
        now = db_now(s)
        got = tracking.claim(s, now, lookahead=0, lease=60, batch=10, stops=True)
        got += tracking.claim(s, now, lookahead=0, lease=60, batch=10, stops=False)
    (mine,) = [c for c in got if c.row_id == stream_id]
    assert mine.kind == "track"
    return tracker.run(stream_id, mine.token)


def row(settings, stream_id) -> ScheduledStream:
    with get_sessionmaker(settings.database_url)() as s:
        return s.get(S, stream_id)


def calls(settings, stream_id) -> list[tuple[str, str | None]]:
    with get_sessionmaker(settings.database_url)() as s:
        query = select(StartAttempt).where(StartAttempt.stream_id == stream_id)
        return [(a.action, a.outcome) for a in s.scalars(query.order_by(StartAttempt.number))]


def timeline(settings, stream_id) -> list[tuple[str, str]]:
    with get_sessionmaker(settings.database_url)() as s:
        query = select(StatusEvent).where(StatusEvent.stream_id == stream_id)
        return [(e.status, e.source) for e in s.scalars(query.order_by(StatusEvent.id))]


def stops_sent(fake_api) -> list[str]:
    return [r.meeting_id for r in fake_api.requests if r.endpoint == "stop"]


def test_a_started_row_is_checked_soon_and_becomes_live(settings, fake_api, rtk_client, started):
    fake_api.configure({"live_after": 0.2})  # a stream keeps the plan it was created with
    stream = started()
    time.sleep(0.3)
    assert stream.state == StreamState.STARTED
    assert stream.due_at - stream.started_at == timedelta(seconds=settings.cadence.first_check)
    assert track(settings, tracker_for(settings, rtk_client), stream.id) == "checked"
    got = row(settings, stream.id)
    assert got.state == StreamState.LIVE and got.livestream_status == "LIVE"
    assert got.live_at is not None and got.claim_token is None
    # Checked again a live_check after this check (the run's instant, not the write's).
    assert abs(
        got.due_at - got.updated_at - timedelta(seconds=settings.cadence.live_check)
    ) < timedelta(seconds=5)
    assert timeline(settings, stream.id) == [("INVOKED", "start"), ("LIVE", "poll")]
    assert calls(settings, stream.id)[-1] == ("status", "observed")


def test_not_live_by_the_deadline_is_flagged_and_cleared_once_live(
    settings, fake_api, rtk_client, started
):
    # INVOKED for 5 s: room for the two checks below on a busy machine (with 1 s, a run
    # of two test suites at once saw LIVE at the first check).
    fake_api.configure({"live_after": 5.0})
    stream = started()
    tracker = tracker_for(settings, rtk_client, live_deadline=0.001)
    assert track(settings, tracker, stream.id) == "checked"
    got = row(settings, stream.id)
    assert (got.state, got.problem) == (StreamState.STARTED, "not_live")
    # A repeated INVOKED adds nothing to the timeline.
    assert track(settings, tracker, stream.id) == "checked"
    assert timeline(settings, stream.id) == [("INVOKED", "start")]
    time.sleep(5.0)  # LIVE by now: it was created before the first check
    assert track(settings, tracker, stream.id) == "checked"
    got = row(settings, stream.id)
    assert (got.state, got.problem) == (StreamState.LIVE, None)


def test_a_stream_is_stopped_once_at_its_end(settings, fake_api, rtk_client, started):
    fake_api.configure({"live_after": 0})
    stream = started()
    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(update(S).where(S.id == stream.id).values(ends_at=db_now(s)))
    tracker = tracker_for(settings, rtk_client)
    assert track(settings, tracker, stream.id) == "stopped"
    got = row(settings, stream.id)
    assert (got.state, got.end_reason) == (StreamState.ENDED, "scheduled_stop")
    assert got.ended_at is not None and got.claim_token is None
    assert stops_sent(fake_api) == [str(stream.meeting_id)]
    assert calls(settings, stream.id)[-2:] == [("status", "observed"), ("stop", "stopped")]
    assert fake_api.stats()["active"] == {}


def test_an_ops_stop_ends_it_with_its_own_reason(settings, fake_api, rtk_client, started):
    stream = started()
    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(update(S).where(S.id == stream.id).values(stop_requested_at=db_now(s)))
    assert track(settings, tracker_for(settings, rtk_client), stream.id) == "stopped"
    assert row(settings, stream.id).end_reason == "ops_stop"


def test_someone_elses_stream_on_the_meeting_is_never_stopped(
    settings, fake_api, rtk_client, started
):
    stream = started()
    client = rtk_client()
    args = (stream.account_id, stream.app_id, str(stream.meeting_id))
    client.stop_active_livestream(*args)  # ours ended upstream...
    other = client.start_livestream(*args)  # ...and another one runs on the meeting
    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(update(S).where(S.id == stream.id).values(ends_at=db_now(s)))
    before = len(stops_sent(fake_api))
    assert track(settings, tracker_for(settings, rtk_client), stream.id) == "ended"
    got = row(settings, stream.id)
    assert (got.state, got.end_reason) == (StreamState.ENDED, "ended_upstream")
    assert len(stops_sent(fake_api)) == before  # no stop sent by the tracker
    assert fake_api.stats()["active"] == {str(stream.meeting_id): other.id}


def test_a_refused_stop_is_flagged_and_not_sent_again(settings, fake_api, rtk_client, started):
    stream = started()
    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(update(S).where(S.id == stream.id).values(ends_at=db_now(s)))
    fake_api.script("stop", 403)
    tracker = tracker_for(settings, rtk_client)
    assert track(settings, tracker, stream.id) == "retrying"
    got = row(settings, stream.id)
    assert (got.state, got.problem) == (StreamState.STARTED, "stop_failed")
    assert "stop refused" in got.last_error and "403" in got.last_error
    assert got.due_at > got.ends_at  # checked later, not stopped again at ends_at
    assert track(settings, tracker, stream.id) == "checked"
    assert len(stops_sent(fake_api)) == 1


def test_an_unclear_stop_is_checked_before_it_is_sent_again(
    settings, fake_api, rtk_client, started
):
    stream = started()
    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(update(S).where(S.id == stream.id).values(ends_at=db_now(s)))
    fake_api.script("stop", 503)
    tracker = tracker_for(settings, rtk_client)
    assert track(settings, tracker, stream.id) == "retrying"
    assert row(settings, stream.id).problem is None
    assert track(settings, tracker, stream.id) == "stopped"
    assert [c for c in calls(settings, stream.id) if c[0] != "start"] == [
        ("status", "observed"), ("stop", "retryable"), ("status", "observed"), ("stop", "stopped"),
    ]  # fmt: skip


def test_a_stale_claim_does_nothing(settings, fake_api, rtk_client, started):
    stream = started()
    tracker = tracker_for(settings, rtk_client)
    assert tracker.run(stream.id, uuid.uuid4()) == "stale"
    assert [r for r in fake_api.requests if r.endpoint == "active"] == []


def test_a_check_left_open_by_a_vanished_run_is_closed_by_the_next(
    settings, fake_api, rtk_client, started
):
    stream = started()
    tracker = tracker_for(settings, rtk_client)
    with get_sessionmaker(settings.database_url).begin() as s:
        now = db_now(s)
        s.execute(update(S).where(S.id == stream.id).values(due_at=now - timedelta(seconds=1)))
    with get_sessionmaker(settings.database_url).begin() as s:
        (claim,) = tracking.claim(s, db_now(s), lookahead=0, lease=60, batch=1, stops=False)
    # The run writes its call ahead, then its process dies before the call.
    assert tracker._write_ahead(stream.id, claim.token, AttemptAction.STATUS) is not None
    with get_sessionmaker(settings.database_url).begin() as s:  # its claim is taken back
        s.execute(update(S).where(S.id == stream.id).values(claim_token=None))
    assert track(settings, tracker, stream.id) == "checked"
    assert [c for c in calls(settings, stream.id) if c[0] == "status"] == [
        ("status", "ambiguous"), ("status", "observed"),
    ]  # fmt: skip


def test_errored_seen_by_a_check_is_recorded_and_flagged(settings, fake_api, rtk_client, started):
    fake_api.configure({"lifecycle": {"live_after": None, "errored_after": 0.2}})
    stream = started()
    time.sleep(0.3)
    assert track(settings, tracker_for(settings, rtk_client), stream.id) == "checked"
    got = row(settings, stream.id)
    assert (got.state, got.livestream_status, got.problem) == ("started", "ERRORED", "errored")
    assert timeline(settings, stream.id) == [("INVOKED", "start"), ("ERRORED", "poll")]


def test_asking_again_after_a_refused_stop_is_how_ops_retry_it(
    settings, fake_api, rtk_client, started
):
    stream = started()
    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(update(S).where(S.id == stream.id).values(ends_at=db_now(s)))
    fake_api.script("stop", 403)
    tracker = tracker_for(settings, rtk_client)
    assert track(settings, tracker, stream.id) == "retrying"
    assert row(settings, stream.id).problem == "stop_failed"
    with get_sessionmaker(settings.database_url).begin() as s:
        booking.stop(s, s.get(S, stream.id))
    asked = row(settings, stream.id)
    assert asked.problem is None and asked.stop_requested_at is not None
    assert track(settings, tracker, stream.id) == "stopped"
    assert row(settings, stream.id).end_reason == "ops_stop"
    assert len(stops_sent(fake_api)) == 2
