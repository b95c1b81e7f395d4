"""The Python API for bookings: schedule, reschedule, cancel, retry, stop and find (list:
listing.py).

Every function takes a Session that the caller owns and commits. Input is validated before
anything is written; a refusal raises ``BookingError`` naming the field, and leaves the
database as it was.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, exists, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import (
    TRACKED_STATES,
    EventType,
    Problem,
    ScheduledStream,
    StartAttempt,
    StreamState,
    UTCDateTime,
)
from models.db import db_now
from worker.bookings import ending, transitions
from worker.bookings.timeparse import parse_instant
from worker.errors import BookingConflict, BookingError, BookingNotFound
from worker.notify import outbox
from worker.settings import Settings
from worker.upstream.attempts import UNCLEAR_START_CALL, first_unclear_call

# The contract's pattern is ^[a-zA-Z0-9-_]*$; spelled out here so nobody reads "9-_" as a range.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]*")
NAME_MAX = 200
# Account and app ids go into the URL path: no slashes, dots or anything to escape.
IDENT_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
REF_MAX = 200
MAX_START_WINDOW = 86400.0  # seconds: a start is tried at most a day after its instant
MAX_VIDEO_SIDE = 8192

_A = StartAttempt
# Cancel and reschedule wait while a start call may have created a livestream (and no later
# reconcile found none): the next run looks for it. Part of the UPDATE's WHERE, so a
# dispatcher cannot slip in between.
_NO_UNCLEAR_START_CALL = ~exists().where(_A.stream_id == ScheduledStream.id, UNCLEAR_START_CALL)
# A stop is asked for once: a second request would move due_at again and say nothing new.
# A stop may be asked for once, or again after the last one failed for good (stop_failed):
# asking again is how ops retry it.
_STOP_FAILED = ScheduledStream.problem == Problem.STOP_FAILED.value
_NO_STOP_REQUESTED = or_(ScheduledStream.stop_requested_at.is_(None), _STOP_FAILED)
# An occurrence of a series changed on its own leaves the rule: the series' edits and its
# cancellation no longer touch it (worker.series.claims). A booking of no series stays false.
_DETACH = ScheduledStream.series_id.is_not(None)


@dataclass(frozen=True)
class BookingRequest:
    """A validated booking, not yet stored."""

    meeting_id: uuid.UUID
    account_id: str
    app_id: str
    scheduled_at: datetime
    timezone: str
    start_window: float
    name: str | None = None
    video_width: int | None = None
    video_height: int | None = None
    external_ref: str | None = None
    ends_at: datetime | None = None
    # What the caller gave for the end ("ends_at" or "duration"): a conflict names that one.
    end_field: str = "ends_at"


@dataclass(frozen=True)
class Scheduled:
    stream: ScheduledStream
    created: bool  # False when an identical booking with the same external_ref existed


def validate(
    settings: Settings,
    *,
    meeting_id: str | uuid.UUID,
    at: str | datetime,
    tz: str | None = None,
    account_id: str | None = None,
    app_id: str | None = None,
    name: str | None = None,
    width: int | None = None,
    height: int | None = None,
    external_ref: str | None = None,
    start_window: float | None = None,
    ends_at: str | datetime | None = None,
    duration: str | float | timedelta | None = None,
) -> BookingRequest:
    """Check every field; the first problem raises BookingError naming it."""
    scheduled_at, zone_name = parse_instant(at, tz)
    window = settings.claims.start_window if start_window is None else start_window
    if (
        not isinstance(window, int | float)
        or isinstance(window, bool)
        or not 0 < window <= MAX_START_WINDOW
    ):
        raise BookingError("start_window", f"must be between 0 and {MAX_START_WINDOW:g} seconds")
    end = ending.end_instant(
        scheduled_at,
        ends_at=ends_at,
        duration=duration,
        tz=tz,
        max_duration=settings.cadence.max_duration,
    )
    return BookingRequest(
        meeting_id=parse_uuid("meeting_id", meeting_id),
        account_id=_ident(
            "account_id", account_id or settings.upstream.account_id, "CLOUDFLARE_ACCOUNT_ID"
        ),
        app_id=_ident("app_id", app_id or settings.upstream.app_id, "REALTIMEKIT_APP_ID"),
        scheduled_at=scheduled_at,
        timezone=zone_name,
        start_window=float(window),
        name=_name(name),
        video_width=_side("width", width),
        video_height=_side("height", height),
        external_ref=parse_ref(external_ref),
        ends_at=end,
        end_field="duration" if duration is not None else "ends_at",
    )


def schedule(session: Session, settings: Settings, **fields: object) -> Scheduled:
    """Book a livestream; with an ``external_ref`` seen before, return that booking instead.

    The same ref with the same fields returns the stored booking (a caller's retry); the same
    ref with other fields raises BookingConflict.
    """
    request = validate(settings, **fields)  # type: ignore[arg-type]
    if request.external_ref is not None:
        existing = _by_ref(session, request.external_ref)
        if existing is not None:
            return Scheduled(_same_or_conflict(existing, request), created=False)
    now = db_now(session)
    if request.scheduled_at <= now:
        raise BookingError("at", f"{request.scheduled_at.isoformat()} is in the past")
    stream = ScheduledStream(
        id=uuid.uuid4(),
        external_ref=request.external_ref,
        account_id=request.account_id,
        app_id=request.app_id,
        meeting_id=request.meeting_id,
        name=request.name,
        video_width=request.video_width,
        video_height=request.video_height,
        scheduled_at=request.scheduled_at,
        timezone=request.timezone,
        start_deadline=request.scheduled_at + timedelta(seconds=request.start_window),
        start_window=request.start_window,
        ends_at=request.ends_at,
        due_at=request.scheduled_at,
        created_at=now,
        updated_at=now,
        state=StreamState.SCHEDULED.value,
        attempts=0,
    )
    try:
        with session.begin_nested():
            session.add(stream)
    except IntegrityError:
        # Another caller booked the same ref between our lookup and our insert.
        existing = _by_ref(session, request.external_ref) if request.external_ref else None
        if existing is None:
            raise
        return Scheduled(_same_or_conflict(existing, request), created=False)
    return Scheduled(stream, created=True)


def find(
    session: Session, ident: str | uuid.UUID | None = None, *, ref: str | None = None
) -> ScheduledStream:
    """The booking with this id, or with this external reference."""
    if (ident is None) == (ref is None):
        raise BookingError("id", "give either a booking id or --ref, not both or neither")
    if ref is not None:
        stream = _by_ref(session, ref)
        if stream is None:
            raise BookingNotFound("ref", f"no booking with external_ref {ref!r}")
        return stream
    stream_id = parse_uuid("id", ident)
    found = session.get(ScheduledStream, stream_id, populate_existing=True)
    if found is None:
        raise BookingNotFound("id", f"no booking with id {stream_id}")
    return found


def attempts(session: Session, stream: ScheduledStream) -> list[StartAttempt]:
    """Every upstream call made for a booking, oldest first."""
    query = (
        select(StartAttempt)
        .where(StartAttempt.stream_id == stream.id)
        .order_by(StartAttempt.number)
    )
    return list(session.scalars(query))


def cancel(session: Session, stream: ScheduledStream) -> ScheduledStream:
    """Cancel a booking that has not been claimed yet."""
    now = db_now(session)
    ok = transitions.transition(
        session,
        stream.id,
        (StreamState.SCHEDULED, StreamState.RETRYING),
        now,
        guard=_NO_UNCLEAR_START_CALL,
        state=StreamState.CANCELLED.value,
        last_error="cancelled by ops",
        detached=_DETACH,
    )
    outbox.after(ok, session, EventType.BOOKING_CANCELLED, stream.id, now)
    return _applied(session, stream, ok, "cancel", "scheduled or retrying", unsettled=True)


def reschedule(
    session: Session,
    settings: Settings,
    stream: ScheduledStream,
    *,
    at: str | datetime,
    tz: str | None = None,
    start_window: float | None = None,
    ends_at: str | datetime | None = None,
    duration: str | float | timedelta | None = None,
) -> ScheduledStream:
    """Move a booking that has not started to another instant (and zone, if given).

    The booked length is kept (the end moves with the start) unless ``ends_at`` or
    ``duration`` gives a new one.
    """
    # A wall time without --tz is read in the booking's own zone.
    scheduled_at, zone_name = parse_instant(at, tz or stream.timezone)
    window = _window(start_window, stream)
    if ends_at is None and duration is None:
        # From the row as read: a reschedule racing this one keeps the same length, so the
        # end is right whichever UPDATE lands last.
        end = (
            None
            if stream.ends_at is None
            else scheduled_at + (stream.ends_at - stream.scheduled_at)
        )
    else:
        end = ending.end_instant(
            scheduled_at,
            ends_at=ends_at,
            duration=duration,
            tz=tz or stream.timezone,
            max_duration=settings.cadence.max_duration,
        )
    now = db_now(session)
    if scheduled_at <= now:
        raise BookingError("at", f"{scheduled_at.isoformat()} is in the past")
    ok = transitions.transition(
        session,
        stream.id,
        (StreamState.SCHEDULED, StreamState.RETRYING),
        now,
        guard=_NO_UNCLEAR_START_CALL,
        state=StreamState.SCHEDULED.value,
        scheduled_at=scheduled_at,
        due_at=scheduled_at,
        start_deadline=scheduled_at + timedelta(seconds=window),
        start_window=window,
        timezone=zone_name,
        ends_at=end,
        detached=_DETACH,
    )
    return _applied(session, stream, ok, "reschedule", "scheduled or retrying", unsettled=True)


def retry(
    session: Session,
    settings: Settings,
    stream: ScheduledStream,
    *,
    at: str | datetime | None = None,
    start_window: float | None = None,
) -> ScheduledStream:
    """Give a failed or missed booking another go, now or at ``at``; its history is kept."""
    now = db_now(session)
    due = now if at is None else parse_instant(at, stream.timezone)[0]
    if due < now - timedelta(seconds=1):
        raise BookingError("at", f"{due.isoformat()} is in the past")
    window = _window(start_window, stream)
    ok = transitions.transition(
        session,
        stream.id,
        (StreamState.FAILED, StreamState.MISSED),
        now,
        state=StreamState.SCHEDULED.value,
        due_at=due,
        start_deadline=due + timedelta(seconds=window),
        start_window=window,
        last_error=None,
    )
    return _applied(session, stream, ok, "retry", "failed or missed")


def stop(session: Session, stream: ScheduledStream) -> ScheduledStream:
    """Ask for a started or live booking's livestream to be stopped now; the tracking run
    stops it upstream. Refused (BookingConflict, with the reason) in any other state, and
    when a stop was asked for already.
    """
    now = db_now(session)
    ok = transitions.transition(  # STOP_REQUEST
        session,
        stream.id,
        TRACKED_STATES,
        now,
        guard=_NO_STOP_REQUESTED,
        stop_requested_at=now,
        problem=case((_STOP_FAILED, None), else_=ScheduledStream.problem),
        # An idle row is due now, so the next tick hands it to a tracking run. A row held by a
        # run keeps its due_at: that run reads stop_requested_at when it finishes and makes
        # the stop its next action; moving due_at under it would be overwritten anyway.
        due_at=case(
            # Typed as the column: SQLite compares these instants as text, in one format.
            (ScheduledStream.claim_token.is_(None), literal(now, UTCDateTime())),
            else_=ScheduledStream.due_at,
        ),
    )
    session.refresh(stream)
    if ok:
        return stream
    field, reason = ending.stop_refusal(stream)
    raise BookingConflict(field, reason)


def _applied(
    session: Session,
    stream: ScheduledStream,
    ok: bool,
    verb: str,
    allowed: str,
    *,
    unsettled: bool = False,
) -> ScheduledStream:
    session.refresh(stream)
    if ok:
        return stream
    # The UPDATE decided; this only reads why, for the message.
    call = first_unclear_call(session, stream.id) if unsettled else None
    if call is not None and stream.state in (StreamState.SCHEDULED, StreamState.RETRYING):
        raise BookingConflict(
            "state",
            f"start call {call.number} of this booking ({_call_result(call)}) may have created "
            f"a livestream upstream; the next attempt, due {stream.due_at.isoformat()}, looks "
            f"for it first: {verb} after that",
        )
    raise BookingConflict(
        "state", f"cannot {verb} a booking that is {stream.state}; only {allowed}"
    )


def _call_result(call: StartAttempt) -> str:
    if call.outcome is None:
        return "no outcome recorded"
    said = f"HTTP {call.http_status}" if call.http_status is not None else "no HTTP answer"
    return f"{said}, livestream {call.livestream_id}" if call.livestream_id else said


def _window(start_window: float | None, stream: ScheduledStream) -> float:
    """The window a new due instant gets: the one given, else the one the booking has."""
    if start_window is None:
        return stream.start_window
    if not 0 < start_window <= MAX_START_WINDOW:
        raise BookingError("start_window", f"must be between 0 and {MAX_START_WINDOW:g} seconds")
    return start_window


def _by_ref(session: Session, ref: str) -> ScheduledStream | None:
    query = select(ScheduledStream).where(ScheduledStream.external_ref == ref)
    return session.scalars(query).one_or_none()


def _same_or_conflict(existing: ScheduledStream, request: BookingRequest) -> ScheduledStream:
    wanted = {
        "meeting_id": request.meeting_id,
        "account_id": request.account_id,
        "app_id": request.app_id,
        "scheduled_at": request.scheduled_at,
        "timezone": request.timezone,
        "name": request.name,
        "video_width": request.video_width,
        "video_height": request.video_height,
        # The window as asked, not the deadline: an ops retry moves the deadline, and the
        # caller's own retry of the booking call must still find its booking.
        "start_window": request.start_window,
        "ends_at": request.ends_at,
    }
    differ = [k for k, v in wanted.items() if getattr(existing, k) != v]
    differ = [request.end_field if k == "ends_at" else k for k in differ]
    if differ:
        raise BookingConflict(
            "external_ref",
            f"{request.external_ref!r} is already booked as {existing.id} with other "
            f"{', '.join(differ)}",
            fields=tuple(differ),
        )
    return existing


def parse_uuid(field: str, value: str | uuid.UUID | None) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value).strip())
    except ValueError:
        raise BookingError(field, f"must be a UUID, got {value!r}") from None


def _ident(field: str, value: str | None, env_name: str) -> str:
    if value is None or value == "":
        raise BookingError(field, f"is required: pass it or set {env_name}")
    if not IDENT_PATTERN.fullmatch(value):
        raise BookingError(
            field, f"must be 1-32 characters of letters, digits, '-' or '_', got {value!r}"
        )
    return value


def _name(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > NAME_MAX or not NAME_PATTERN.fullmatch(value):
        raise BookingError(
            "name",
            f"must be at most {NAME_MAX} letters, digits, '-' or '_' "
            f"(pattern ^[a-zA-Z0-9-_]*$), got {value[:60]!r}",
        )
    return value


def _side(field: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VIDEO_SIDE:
        raise BookingError(
            field, f"must be a whole number of pixels from 1 to {MAX_VIDEO_SIDE}, got {value!r}"
        )
    return value


def parse_ref(value: str | None) -> str | None:
    if value is None:
        return None
    if not value or len(value) > REF_MAX or not value.isprintable() or value != value.strip():
        raise BookingError(
            "external_ref", f"must be 1-{REF_MAX} printable characters without surrounding spaces"
        )
    return value
