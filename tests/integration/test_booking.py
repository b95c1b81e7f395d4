"""The booking API on SQLite and PostgreSQL: what is stored, and what a refusal leaves alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models import ScheduledStream, StreamState
from models.db import get_sessionmaker
from tests.attempt_rows import add_calls
from tests.dbdump import dump
from worker import booking, listing
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
    assert row.start_deadline == FUTURE + timedelta(seconds=settings.start_window)
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
    assert moved.start_deadline == later + timedelta(seconds=settings.start_window)


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
