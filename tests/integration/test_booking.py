"""The booking API on SQLite and PostgreSQL: what is stored, and what a refusal leaves alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from models import ScheduledStream, StreamState
from models.db import db_now, get_sessionmaker
from tests.attempt_rows import add_calls
from tests.conftest import tuned
from tests.dbdump import dump
from worker.bookings import booking, listing
from worker.errors import BookingConflict, BookingError, BookingNotFound

FUTURE = datetime(2031, 5, 1, 18, 0, tzinfo=UTC)


def test_schedule_stores_exactly_what_was_asked(settings, session) -> None:
    meeting = uuid.uuid4()
    result = booking.schedule(
        session,
        settings,
        meeting_id=str(meeting),
        at="2031-05-01 20:00",
        tz="Europe/Berlin",
        name="launch-day_1",
        width=1920,
        height=1080,
        external_ref="evt-42",
    )
    session.commit()
    assert result.created
    with get_sessionmaker(settings.database_url)() as fresh:
        row = fresh.scalars(select(ScheduledStream)).one()
    assert row.meeting_id == meeting
    assert row.account_id == "acct-test" and row.app_id == "app-test"
    assert row.scheduled_at == FUTURE and row.scheduled_at.tzinfo is not None
    assert row.due_at == FUTURE
    assert row.start_deadline == FUTURE + timedelta(seconds=settings.claims.start_window)
    assert row.timezone == "Europe/Berlin"
    assert (row.name, row.video_width, row.video_height) == ("launch-day_1", 1920, 1080)
    assert row.state == StreamState.SCHEDULED and row.attempts == 0
    assert row.external_ref == "evt-42"


def test_same_ref_same_fields_returns_the_existing_booking(settings, book) -> None:
    meeting = str(uuid.uuid4())
    first = book(meeting_id=meeting, at=FUTURE, external_ref="evt-1")
    again = book(meeting_id=meeting, at=FUTURE, external_ref="evt-1")
    assert again.id == first.id
    with get_sessionmaker(settings.database_url)() as s:
        assert len(s.scalars(select(ScheduledStream)).all()) == 1


def test_same_ref_other_fields_is_a_conflict_and_changes_nothing(settings, book) -> None:
    book(meeting_id=str(uuid.uuid4()), at=FUTURE, external_ref="evt-1", name="a")
    before = dump(settings.database_url)
    with pytest.raises(BookingConflict) as err:
        book(meeting_id=str(uuid.uuid4()), at=FUTURE, external_ref="evt-1", name="b")
    assert err.value.field == "external_ref"
    assert "meeting_id" in str(err.value) and "name" in str(err.value)
    assert dump(settings.database_url) == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"meeting_id": "not-a-uuid"}, "meeting_id"),
        ({"account_id": "a" * 33}, "account_id"),
        ({"account_id": "../admin"}, "account_id"),
        ({"app_id": "has space"}, "app_id"),
        ({"name": "team sync"}, "name"),
        ({"name": "v1.2"}, "name"),
        ({"width": 0}, "width"),
        ({"height": 8193}, "height"),
        ({"width": True}, "width"),
        ({"at": "2020-01-01T00:00:00Z"}, "at"),
        ({"at": "2031-05-01 12:00"}, "at"),
        ({"at": "2031-05-01 12:00", "tz": "Nowhere/Land"}, "tz"),
        ({"external_ref": ""}, "external_ref"),
        ({"external_ref": " padded "}, "external_ref"),
        ({"start_window": 0}, "start_window"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(settings, book, fields, field) -> None:
    book(external_ref="already-there")
    before = dump(settings.database_url)
    with pytest.raises(BookingError) as err:
        book(**{"at": FUTURE, **fields})
    assert err.value.field == field
    assert dump(settings.database_url) == before


def test_missing_account_names_the_environment_variable(settings, session) -> None:
    bare = type(settings)(database_url=settings.database_url)
    with pytest.raises(BookingError, match="CLOUDFLARE_ACCOUNT_ID"):
        booking.schedule(session, bare, meeting_id=str(uuid.uuid4()), at=FUTURE)


def test_cancel_then_cancel_again_is_refused(settings, book) -> None:
    stream = book(at=FUTURE)
    with get_sessionmaker(settings.database_url).begin() as s:
        cancelled = booking.cancel(s, booking.find(s, stream.id))
        assert cancelled.state == StreamState.CANCELLED
    before = dump(settings.database_url)
    with get_sessionmaker(settings.database_url).begin() as s, pytest.raises(BookingConflict):
        booking.cancel(s, booking.find(s, stream.id))
    assert dump(settings.database_url) == before


UNCLEAR_502 = ("start", "ambiguous", 502)
IN_FLIGHT = ("start", None, None)
FOUND_NONE = ("reconcile", "absent", 200)


@pytest.mark.parametrize(
    ("calls", "unsettled"),
    [
        ([UNCLEAR_502], (1, "HTTP 502")),
        ([IN_FLIGHT], (1, "no outcome recorded")),
        ([UNCLEAR_502, ("reconcile", "retryable", 503)], (1, "HTTP 502")),
        ([UNCLEAR_502, FOUND_NONE, ("start", "ambiguous", 504)], (3, "HTTP 504")),
        # Settled: a reconcile found no livestream after the unclear call, or none was unclear.
        ([UNCLEAR_502, FOUND_NONE], None),
        ([UNCLEAR_502, FOUND_NONE, ("start", "retryable", 408)], None),
        ([("start", "retryable", 408)], None),
    ],
)  # fmt: skip
@pytest.mark.parametrize("verb", ["cancel", "reschedule"])
def test_cancel_and_reschedule_wait_for_an_unclear_start_call(
    settings, book, calls, unsettled, verb
) -> None:
    stream = book(at=FUTURE)
    url = settings.database_url
    with get_sessionmaker(url)() as s:
        # Read before the calls are written: the UPDATE decides, not what was read.
        stale = booking.find(s, stream.id)
        s.commit()  # SQLite: let add_calls write
        add_calls(url, stream.id, *calls)
        before = dump(url)
        if verb == "cancel":
            change = lambda: booking.cancel(s, stale)  # noqa: E731
        else:
            later = FUTURE + timedelta(days=1)
            change = lambda: booking.reschedule(s, settings, stale, at=later)  # noqa: E731
        if unsettled is None:
            assert change().state == (
                StreamState.CANCELLED if verb == "cancel" else StreamState.SCHEDULED
            )
            return
        with pytest.raises(BookingConflict) as err:
            change()
        s.commit()
    assert err.value.field == "state"
    message = str(err.value)
    number, result = unsettled
    expected = f"state: start call {number} of this booking ({result}) may have created a "
    assert message.startswith(expected + "livestream upstream; the next attempt, due"), message
    assert message.endswith(f"{verb} after that") and "\n" not in message
    assert dump(url) == before


def test_reschedule_moves_instant_due_and_deadline(settings, book) -> None:
    stream = book(at=FUTURE, tz="Europe/Berlin")
    later = FUTURE + timedelta(days=1)
    with get_sessionmaker(settings.database_url).begin() as s:
        moved = booking.reschedule(s, settings, booking.find(s, stream.id), at="2031-05-02 20:00")
    assert moved.scheduled_at == later  # read in the booking's own zone
    assert moved.due_at == later
    assert moved.start_deadline == later + timedelta(seconds=settings.claims.start_window)


def test_retry_only_from_failed_or_missed(settings, book) -> None:
    stream = book(at=FUTURE)
    with get_sessionmaker(settings.database_url).begin() as s, pytest.raises(BookingConflict):
        booking.retry(s, settings, booking.find(s, stream.id))
    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(
            ScheduledStream.__table__.update()
            .where(ScheduledStream.id == stream.id)
            .values(state="missed", last_error="deadline passed")
        )
    with get_sessionmaker(settings.database_url).begin() as s:
        again = booking.retry(s, settings, booking.find(s, stream.id))
    assert again.state == StreamState.SCHEDULED
    assert again.last_error is None
    assert again.due_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert again.start_deadline > again.due_at


def test_find_by_id_and_ref(settings, book, session) -> None:
    stream = book(external_ref="evt-9")
    assert booking.find(session, str(stream.id)).id == stream.id
    assert booking.find(session, ref="evt-9").id == stream.id
    with pytest.raises(BookingNotFound):
        booking.find(session, str(uuid.uuid4()))
    with pytest.raises(BookingNotFound):
        booking.find(session, ref="nope")
    with pytest.raises(BookingError):
        booking.find(session, "garbage")


def test_list_filters_and_orders_by_start(settings, book, session) -> None:
    meeting = str(uuid.uuid4())
    late = book(meeting_id=meeting, at=FUTURE + timedelta(hours=2))
    early = book(meeting_id=meeting, at=FUTURE)
    book(at=FUTURE + timedelta(hours=1))
    rows = listing.list_streams(session, meeting_id=meeting)
    assert [r.id for r in rows] == [early.id, late.id]
    rows = listing.list_streams(
        session, start=FUTURE + timedelta(minutes=30), end=FUTURE + timedelta(hours=3)
    )
    assert len(rows) == 2
    assert len(listing.list_streams(session, limit=1)) == 1
    assert listing.list_streams(session, states=["cancelled"]) == []
    with pytest.raises(BookingError, match="state"):
        listing.list_streams(session, states=["sleeping"])


# -- the end of a booking: ends_at / duration ------------------------------------------------
FALL_BACK = "2031-10-26T00:00Z"  # 02:30 happens twice in Berlin an hour or two later


def _stored(settings, stream_id: uuid.UUID) -> ScheduledStream:
    with get_sessionmaker(settings.database_url)() as s:
        row = s.get(ScheduledStream, stream_id)
        assert row is not None
        return row


@pytest.mark.parametrize(
    "end",
    [
        {"duration": "1h30m"},
        {"duration": 5400},
        {"ends_at": "2031-05-01 21:30", "tz": "Europe/Berlin"},
        {"ends_at": "2031-05-01T19:30:00Z"},
    ],
)
def test_the_end_is_stored_as_one_utc_instant(settings, book, end) -> None:
    stream = book(at=FUTURE, **end)
    assert _stored(settings, stream.id).ends_at == FUTURE + timedelta(hours=1, minutes=30)


def test_no_end_given_stores_none(settings, book) -> None:
    assert _stored(settings, book(at=FUTURE).id).ends_at is None


@pytest.mark.parametrize(
    ("end", "field"),
    [
        ({"ends_at": "2031-05-01T18:00:00Z"}, "ends_at"),  # the start itself
        ({"ends_at": "2031-05-01T17:00:00Z"}, "ends_at"),
        ({"ends_at": "2031-05-02T18:00:01Z"}, "ends_at"),  # past the 24 h maximum
        ({"duration": "25h"}, "duration"),
        ({"duration": "-1h"}, "duration"),
        ({"duration": "soon"}, "duration"),
        ({"ends_at": "2031-05-01T19:00:00Z", "duration": "1h"}, "ends_at"),
        ({"at": FALL_BACK, "tz": "Europe/Berlin", "ends_at": "2031-10-26 02:30"}, "ends_at"),
    ],
)  # fmt: skip
def test_a_refused_end_names_its_field_and_stores_nothing(settings, book, end, field) -> None:
    book(external_ref="already-there")
    before = dump(settings.database_url)
    with pytest.raises(BookingError) as err:
        book(**{"at": FUTURE, **end})
    assert err.value.field == field
    assert dump(settings.database_url) == before


def test_the_maximum_follows_the_setting(settings, session) -> None:
    short = tuned(settings, cadence={"max_duration": 3600.0})
    with pytest.raises(BookingError, match="at most 1h"):
        booking.schedule(session, short, meeting_id=str(uuid.uuid4()), at=FUTURE, duration="61m")
    ok = booking.schedule(session, short, meeting_id=str(uuid.uuid4()), at=FUTURE, duration="1h")
    assert ok.stream.ends_at == FUTURE + timedelta(hours=1)


@pytest.mark.parametrize(
    ("again", "conflict"),
    [
        ({"duration": "1h"}, None),
        ({"ends_at": "2031-05-01T19:00:00Z"}, None),  # the same instant, said the other way
        ({"duration": "2h"}, "duration"),
        ({"ends_at": "2031-05-01T20:00:00Z"}, "ends_at"),
        ({}, "ends_at"),
    ],
)
def test_the_same_ref_with_another_end_is_a_conflict(settings, book, again, conflict) -> None:
    meeting = str(uuid.uuid4())
    first = book(meeting_id=meeting, at=FUTURE, external_ref="evt-end", duration="1h")
    before = dump(settings.database_url)
    if conflict is None:
        assert book(meeting_id=meeting, at=FUTURE, external_ref="evt-end", **again).id == first.id
    else:
        with pytest.raises(BookingConflict) as err:
            book(meeting_id=meeting, at=FUTURE, external_ref="evt-end", **again)
        assert err.value.fields == (conflict,)
    assert dump(settings.database_url) == before


def _reschedule(settings, stream_id: uuid.UUID, **fields) -> ScheduledStream:
    with get_sessionmaker(settings.database_url).begin() as s:
        return booking.reschedule(s, settings, booking.find(s, stream_id), **fields)


def test_reschedule_keeps_the_booked_length_unless_given_a_new_end(settings, book) -> None:
    stream = book(at=FUTURE, tz="Europe/Berlin", duration="1h30m")
    later = FUTURE + timedelta(days=1)
    moved = _reschedule(settings, stream.id, at="2031-05-02 20:00")
    assert (moved.scheduled_at, moved.ends_at) == (later, later + timedelta(minutes=90))
    moved = _reschedule(settings, stream.id, at="2031-05-02 20:00", duration="45m")
    assert moved.ends_at == later + timedelta(minutes=45)
    # A wall time is read in the booking's zone, as for --at.
    moved = _reschedule(settings, stream.id, at="2031-05-02 20:00", ends_at="2031-05-02 23:00")
    assert moved.ends_at == later + timedelta(hours=3)
    before = dump(settings.database_url)
    with pytest.raises(BookingError) as err:
        _reschedule(settings, stream.id, at="2031-05-03 20:00", ends_at="2031-05-02 23:00")
    assert err.value.field == "ends_at" and "is not after the start" in str(err.value)
    assert dump(settings.database_url) == before


def test_reschedule_of_a_booking_without_an_end_adds_none(settings, book) -> None:
    stream = book(at=FUTURE)
    assert _reschedule(settings, stream.id, at=FUTURE + timedelta(hours=1)).ends_at is None


# -- stop ------------------------------------------------------------------------------------
def _follow(settings, stream_id: uuid.UUID, state: str, **values) -> None:
    """Put a booking where a start run or a tracking run leaves it."""
    with get_sessionmaker(settings.database_url).begin() as s:
        now = db_now(s)
        s.execute(
            update(ScheduledStream)
            .where(ScheduledStream.id == stream_id)
            .values(
                state=state, livestream_id="ls-1", started_at=now,
                due_at=now + timedelta(minutes=5), **values,
            )
        )  # fmt: skip


def _stop(settings, stream_id: uuid.UUID) -> ScheduledStream:
    with get_sessionmaker(settings.database_url).begin() as s:
        return booking.stop(s, booking.find(s, stream_id))


@pytest.mark.parametrize("state", ["started", "live"])
def test_stop_records_the_request_and_makes_an_idle_row_due_now(settings, book, state) -> None:
    stream = book(at=FUTURE)
    _follow(settings, stream.id, state)
    stopped = _stop(settings, stream.id)
    row = _stored(settings, stream.id)
    assert row.state == state  # the tracking run stops it and ends the row, not this call
    assert row.stop_requested_at is not None and row.stop_requested_at == stopped.stop_requested_at
    assert row.due_at == row.stop_requested_at == row.updated_at


def test_stop_of_a_row_held_by_a_tracking_run_keeps_its_due_at(settings, book) -> None:
    stream = book(at=FUTURE)
    token = uuid.uuid4()
    _follow(settings, stream.id, "live", claim_token=token)
    due = _stored(settings, stream.id).due_at
    _stop(settings, stream.id)
    row = _stored(settings, stream.id)
    assert row.stop_requested_at is not None
    assert (row.due_at, row.claim_token) == (due, token)


def test_a_second_stop_is_refused_with_the_first_request_and_changes_nothing(
    settings, book
) -> None:
    stream = book(at=FUTURE)
    _follow(settings, stream.id, "live")
    first = _stop(settings, stream.id).stop_requested_at
    assert first is not None
    before = dump(settings.database_url)
    with pytest.raises(BookingConflict) as err:
        _stop(settings, stream.id)
    assert err.value.field == "stop_requested_at"
    assert str(err.value).endswith(
        f"already requested at {first.isoformat()}".replace("+00:00", "Z")
    )
    assert dump(settings.database_url) == before


@pytest.mark.parametrize(
    ("state", "values", "reason"),
    [
        ("scheduled", {}, "booking is scheduled: nothing to stop yet"),
        ("retrying", {}, "booking is retrying: nothing to stop yet"),
        ("starting", {}, "booking is starting: nothing to stop yet"),
        ("failed", {}, "booking is failed: it has no livestream to stop"),
        ("cancelled", {}, "booking is cancelled: it has no livestream to stop"),
        (
            "ended",
            {"ended_at": FUTURE, "end_reason": "ops_stop"},
            "already ended (ops_stop at 2031-05-01T18:00:00Z)",
        ),
    ],
)
def test_stop_is_refused_where_nothing_runs(settings, book, state, values, reason) -> None:
    stream = book(at=FUTURE)
    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(
            update(ScheduledStream)
            .where(ScheduledStream.id == stream.id)
            .values(state=state, **values)
        )
    before = dump(settings.database_url)
    with pytest.raises(BookingConflict) as err:
        _stop(settings, stream.id)
    assert err.value.field == "state" and reason in str(err.value)
    assert dump(settings.database_url) == before
