"""The Python API of recurring series: add, edit, cancel, find, and the maker of occurrences.

Occurrences are ordinary bookings (worker.bookings.booking.schedule) with the ref
``<series ref>:<local date>``: making one twice finds the first. ``add`` makes the occurrences
up to the horizon at once (so its capacity forecast sees them); beat's
``livestreams.make_occurrences`` (``make_all``) keeps every active series made up to
``LIVESTREAMS_SERIES_HORIZON`` days ahead. Every function takes a Session that the caller owns
and commits; a refusal raises BookingError naming the field and leaves the database as it was.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from models import EventType, ScheduledStream, Series, SeriesState
from models.db import db_now
from worker.bookings import booking
from worker.bookings.timeparse import parse_duration, zone
from worker.capacity import forecast
from worker.errors import BookingConflict, BookingError, BookingNotFound
from worker.notify import outbox
from worker.series import claims, rules
from worker.series.rules import Occurrence
from worker.settings import Settings

log = logging.getLogger(__name__)

# An occurrence's ref is the series' ref, ":" and its local date (11 characters).
REF_MAX = booking.REF_MAX - len(":2027-01-01")
# What `series edit` may change; the meeting, account and app are the series' identity.
# The first date of a series is at most this far from today, either way.
FIRST_WITHIN = timedelta(days=3660)
# A series made up to within this of the horizon waits for a later run of the maker: each
# series is expanded about hourly, not at every run.
MAKE_SLACK = timedelta(hours=1)
# How far ahead ``show`` looks for dates a clock change moves.
NOTES_AHEAD = timedelta(days=366)
EDITABLE = ("rule", "at", "tz", "duration", "name", "width", "height", "start_window", "exdates")


@dataclass(frozen=True)
class Made:
    """What a call did: the series, the occurrences it made, and the capacity warnings."""

    series: Series
    created: bool = True
    made: list[ScheduledStream] = field(default_factory=list)
    moved: int = 0
    cancelled: int = 0
    warnings: list[str] = field(default_factory=list)


def add(
    session: Session,
    settings: Settings,
    *,
    ref: str,
    meeting_id: str | uuid.UUID,
    rule: str,
    at: str,
    tz: str,
    duration: str | float | timedelta | None = None,
    first: str | date | None = None,
    name: str | None = None,
    width: int | None = None,
    height: int | None = None,
    account_id: str | None = None,
    app_id: str | None = None,
    start_window: float | None = None,
    exdates: list[str] | None = None,
    strict: bool = False,
) -> Made:
    """Add a series and make its occurrences up to the horizon. The same ref with the same
    fields returns the stored series (``created`` False); with other fields, BookingConflict.
    """
    if duration is None:
        raise BookingError("duration", "is required: how long each occurrence runs")
    now = db_now(session)
    where = zone(tz)
    wall = rules.parse_wall_time(at)
    day = _first_day(first, now.astimezone(where).date())
    # The occurrence fields are checked as a booking on the first date would be.
    sample = booking.validate(
        settings,
        meeting_id=meeting_id, at=rules.place(day, wall, where).at, tz=tz,
        account_id=account_id, app_id=app_id, name=name, width=width, height=height,
        external_ref=_ref(ref), start_window=start_window, duration=duration,
    )  # fmt: skip
    fields = {
        "ref": _ref(ref),
        "account_id": sample.account_id,
        "app_id": sample.app_id,
        "meeting_id": sample.meeting_id,
        "name": sample.name,
        "video_width": sample.video_width,
        "video_height": sample.video_height,
        "rule": rules.parse_rule(rule).text,
        "exdates": _exdates(exdates or []),
        "first_date": day,
        "wall_time": wall.strftime("%H:%M"),
        "timezone": sample.timezone,
        "duration": parse_duration(duration).total_seconds(),
        "start_window": sample.start_window,
    }
    existing = session.scalars(select(Series).where(Series.ref == fields["ref"])).one_or_none()
    if existing is not None:
        # Without --first the first date is today's: a retry on another day is the same ask.
        compared = {k: v for k, v in fields.items() if first is not None or k != "first_date"}
        differ = [k for k, v in compared.items() if getattr(existing, k) != v]
        if differ:
            raise BookingConflict(
                "ref",
                f"{existing.ref!r} is already a series ({existing.id}) with other "
                f"{', '.join(differ)}",
                fields=tuple(differ),
            )
        return Made(existing, created=False)
    series = Series(
        id=uuid.uuid4(), state=SeriesState.ACTIVE.value, created_at=now, updated_at=now, **fields
    )
    try:
        with session.begin_nested():
            session.add(series)
    except IntegrityError:
        # Another caller added the same ref between our lookup and our insert.
        raise BookingConflict("ref", f"{series.ref!r} was just added by another call") from None
    outbox.emit_series(session, EventType.SERIES_CREATED, series, now)
    made = make(session, settings, series, now)
    session.refresh(series)
    warnings = _guard(session, settings, made, strict)
    return Made(series, made=made, warnings=warnings)


def edit(
    session: Session, settings: Settings, series: Series, *, strict: bool = False, **changes: Any
) -> Made:
    """Change the rule, wall time, zone or fields of an active series: its future occurrences
    that nobody changed and that have not begun follow (moved, or cancelled where their date
    left the rule); those made or changed already stay as they are."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise BookingError(unknown[0], "cannot be changed on a series")
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        raise BookingError("series", f"nothing to change: give one of {', '.join(EDITABLE)}")
    values = _edited(settings, series, given)
    now = db_now(session)
    if not claims.change(session, series.id, now, **values):
        session.refresh(series)
        raise BookingConflict("state", f"cannot edit a series that is {series.state}")
    session.refresh(series)
    outbox.emit_series(session, EventType.SERIES_UPDATED, series, now)
    moved, gone = _follow(session, settings, series, now)
    made = make(session, settings, series, now)
    session.refresh(series)
    warnings = _guard(session, settings, [*moved, *made], strict)
    return Made(
        series, created=False, made=made, moved=len(moved), cancelled=len(gone), warnings=warnings
    )


def cancel(session: Session, series: Series) -> Made:
    """Cancel a series: no more occurrences, and its untouched, unstarted ones are cancelled
    (each with its booking.cancelled event); changed or begun ones stay as they are."""
    now = db_now(session)
    if not claims.change(session, series.id, now, state=SeriesState.CANCELLED.value):
        session.refresh(series)
        raise BookingConflict("state", f"cannot cancel a series that is {series.state}")
    session.refresh(series)
    outbox.emit_series(session, EventType.SERIES_CANCELLED, series, now)
    gone = claims.cancel_following(session, series.id, now, claims.CANCELLED_WITH_SERIES)
    outbox.emit_many(session, EventType.BOOKING_CANCELLED, gone, now)
    return Made(series, created=False, cancelled=len(gone))


def find(
    session: Session, ident: str | uuid.UUID | None = None, *, ref: str | None = None
) -> Series:
    """The series with this id, or with this ref."""
    if (ident is None) == (ref is None):
        raise BookingError("id", "give either a series id or --ref, not both or neither")
    if ref is not None:
        found = session.scalars(select(Series).where(Series.ref == ref)).one_or_none()
        if found is None:
            raise BookingNotFound("ref", f"no series with ref {ref!r}")
        return found
    series_id = booking.parse_uuid("id", ident)
    by_id = session.get(Series, series_id, populate_existing=True)
    if by_id is None:
        raise BookingNotFound("id", f"no series with id {series_id}")
    return by_id


def listing(session: Session, *, state: str | None = None, limit: int = 100) -> list[Series]:
    """Series by ref."""
    query = select(Series).order_by(Series.ref).limit(limit)
    if state is not None:
        query = query.where(Series.state == state)
    return list(session.scalars(query))


def occurrences_of(session: Session, series: Series) -> list[ScheduledStream]:
    """Its occurrences made so far, by date."""
    query = select(ScheduledStream).where(ScheduledStream.series_id == series.id)
    return list(session.scalars(query.order_by(ScheduledStream.series_date)))


def expand(series: Series, after: datetime, until: datetime) -> list[Occurrence]:
    """What the rule gives in (after, until]."""
    return rules.occurrences(
        rules.parse_rule(series.rule),
        series.first_date,
        rules.parse_wall_time(series.wall_time),
        zone(series.timezone),
        after=after,
        until=until,
        skip=_days(series.exdates),
    )


def horizon(settings: Settings, now: datetime) -> datetime:
    return now + timedelta(days=settings.series_horizon_days)


def make(
    session: Session, settings: Settings, series: Series, now: datetime
) -> list[ScheduledStream]:
    """Book every occurrence of an active series due by the horizon that has no booking yet;
    the bookings made. Harmless twice: a date with a booking (in any state) is skipped, and
    a maker racing this one books the same ref, which finds the first."""
    if series.state != SeriesState.ACTIVE.value:
        return []
    until = horizon(settings, now)
    have = claims.made_days(session, series.id)
    made = []
    for occurrence in expand(series, now, until):
        if occurrence.day in have:
            continue
        stream = _book(session, settings, series, occurrence)
        if stream is not None:
            made.append(stream)
    claims.made_until(session, series.id, until)
    return made


def make_all(factory: sessionmaker[Session], settings: Settings) -> int:
    """Beat's maker: every active series made up to the horizon, one transaction each (a
    series whose occurrences cannot be booked is logged and left for the next run)."""
    with factory() as session:
        behind = claims.active_behind(session, horizon(settings, db_now(session)) - MAKE_SLACK)
    total = 0
    for series_id in behind:
        try:
            with factory.begin() as session:
                series = session.get(Series, series_id)
                if series is not None:
                    total += len(make(session, settings, series, db_now(session)))
        except BookingError as exc:
            log.warning(
                "occurrences of series %s not made: %s", series_id, exc,
                extra={"action": "series_make_failed", "series_id": str(series_id)},
            )  # fmt: skip
    if total:
        log.info(
            "made %d series occurrences", total,
            extra={"action": "series_made", "count": total},
        )  # fmt: skip
    return total


def timing_notes(series: Series, now: datetime) -> list[Occurrence]:
    """The occurrences in the year ahead (from now, or the first date) whose wall time a
    clock change made odd: ``show`` names them with the rule they follow."""
    first = datetime.combine(series.first_date, time(0), tzinfo=UTC) - timedelta(days=1)
    start = max(now, first)
    found = expand(series, start, start + NOTES_AHEAD)
    return [o for o in found if o.timing is not rules.Timing.EXACT]


def _book(
    session: Session, settings: Settings, series: Series, occurrence: Occurrence
) -> ScheduledStream | None:
    try:
        result = booking.schedule(
            session, settings,
            meeting_id=series.meeting_id, at=occurrence.at, tz=series.timezone,
            account_id=series.account_id, app_id=series.app_id, name=series.name,
            width=series.video_width, height=series.video_height,
            external_ref=f"{series.ref}:{occurrence.day.isoformat()}",
            start_window=series.start_window, duration=series.duration,
        )  # fmt: skip
    except BookingConflict:
        return None  # the ref is booked otherwise (by hand): never ours to change
    if not result.created:
        return None
    claims.attach(session, result.stream.id, series.id, occurrence.day)
    session.refresh(result.stream)
    return result.stream


def _follow(
    session: Session, settings: Settings, series: Series, now: datetime
) -> tuple[list[ScheduledStream], list[uuid.UUID]]:
    """Move the untouched, unstarted occurrences to the series as it now is; cancel those
    whose date left the rule."""
    rows = claims.following(session, series.id, now)
    if not rows:
        return [], []
    last = max(r.scheduled_at for r in rows) + timedelta(days=2)
    wanted = {o.day: o for o in expand(series, now, max(last, horizon(settings, now)))}
    moved, leave = [], []
    for row in rows:
        occurrence = wanted.get(row.series_date) if row.series_date else None
        if occurrence is None:
            leave.append(row.id)
            continue
        values = {
            "scheduled_at": occurrence.at,
            "due_at": occurrence.at,
            "start_deadline": occurrence.at + timedelta(seconds=series.start_window),
            "start_window": series.start_window,
            "ends_at": occurrence.at + timedelta(seconds=series.duration),
            "timezone": series.timezone,
            "name": series.name,
            "video_width": series.video_width,
            "video_height": series.video_height,
        }
        if claims.follow(session, series.id, row.id, now, **values):
            session.refresh(row)
            moved.append(row)
    gone = claims.cancel_following(session, series.id, now, claims.LEFT_THE_RULE, only=leave)
    outbox.emit_many(session, EventType.BOOKING_CANCELLED, gone, now)
    return moved, gone


def _guard(
    session: Session, settings: Settings, rows: list[ScheduledStream], strict: bool
) -> list[str]:
    return forecast.guard(
        session, settings, [(r.scheduled_at, r.start_window) for r in rows], strict=strict
    )


def _edited(settings: Settings, series: Series, given: dict[str, Any]) -> dict[str, Any]:
    """The series' columns for the changes ``given``, each checked as ``add`` checks it."""
    values: dict[str, Any] = {}
    if "rule" in given:
        values["rule"] = rules.parse_rule(given["rule"]).text
    if "at" in given:
        values["wall_time"] = rules.parse_wall_time(given["at"]).strftime("%H:%M")
    if "tz" in given:
        zone(given["tz"])
        values["timezone"] = given["tz"]
    if "duration" in given:
        length = parse_duration(given["duration"]).total_seconds()
        if length > settings.cadence.max_duration:
            raise BookingError("duration", f"must be at most {settings.cadence.max_duration:g} s")
        values["duration"] = length
    if "exdates" in given:
        values["exdates"] = _exdates(given["exdates"])
    checked = booking.validate(
        settings,
        meeting_id=series.meeting_id, at=_noon(series.first_date), tz="UTC",
        account_id=series.account_id, app_id=series.app_id,
        name=given.get("name"), width=given.get("width"), height=given.get("height"),
        start_window=given.get("start_window"),
    )  # fmt: skip
    for key, column in (("name", "name"), ("width", "video_width"), ("height", "video_height")):
        if key in given:
            values[column] = getattr(checked, column)
    if "start_window" in given:
        values["start_window"] = checked.start_window
    return values


def _noon(day: date) -> datetime:
    """Any instant will do where only the other fields of a booking are being checked."""
    return datetime.combine(day, time(12), tzinfo=UTC)


def _first_day(first: str | date | None, today: date) -> date:
    if first is None:
        return today
    try:
        day = first if isinstance(first, date) else date.fromisoformat(first.strip())
    except ValueError:
        raise BookingError("first", f"must be a date YYYY-MM-DD, got {first!r}") from None
    # Bounded so that expanding the rule stays cheap and every instant is a real one.
    if abs((day - today).days) > FIRST_WITHIN.days:
        raise BookingError("first", f"must be within {FIRST_WITHIN.days} days of today")
    return day


def _ref(ref: str) -> str:
    checked = booking.parse_ref(ref)
    if checked is None or len(checked) > REF_MAX:
        raise BookingError("ref", f"must be 1-{REF_MAX} printable characters")
    return checked


def _exdates(values: list[str]) -> str:
    return " ".join(d.isoformat() for d in rules.parse_exdates(values))


def _days(text: str) -> list[date]:
    return [date.fromisoformat(d) for d in text.split()]
