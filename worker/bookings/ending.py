"""When a booked livestream is to end, and why a stop cannot be asked for: pure rules.

``end_instant`` reads ``ends_at`` / ``duration`` as booking and reschedule take them;
``stop_refusal`` words why ``booking.stop``'s UPDATE changed nothing, from the row as it is now.
Neither touches the database, so both are tested with tables.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from models import ScheduledStream, StreamState
from worker.bookings.timeparse import describe_duration, parse_duration, parse_instant
from worker.errors import BookingError


def _fmt(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def end_instant(
    start: datetime,
    *,
    ends_at: str | datetime | None = None,
    duration: str | float | timedelta | None = None,
    tz: str | None = None,
    max_duration: float,
) -> datetime | None:
    """When a livestream starting at ``start`` is to be stopped; None when neither is given.

    ``ends_at`` is read like the start instant (an offset, or a wall time in ``tz`` with the
    same refusals around clock changes); ``duration`` counts from ``start``. The end must come
    after the start, by at most ``max_duration`` seconds (LIVESTREAMS_MAX_DURATION).
    """
    if ends_at is not None and duration is not None:
        raise BookingError("ends_at", "give ends_at or duration, not both")
    if duration is not None:
        field, length = "duration", parse_duration(duration)
    elif ends_at is not None:
        end = parse_instant(ends_at, tz, "ends_at")[0]
        field, length = "ends_at", end - start
        if length <= timedelta(0):
            raise BookingError("ends_at", f"{_fmt(end)} is not after the start ({_fmt(start)})")
    else:
        return None
    limit = timedelta(seconds=max_duration)
    # Compared before adding: a duration of years must be refused, not overflow the date.
    if length > limit:
        raise BookingError(
            field,
            f"the livestream would last {describe_duration(length)}; at most "
            f"{describe_duration(limit)} (LIVESTREAMS_MAX_DURATION)",
        )
    try:
        return start + length
    except OverflowError:
        raise BookingError(field, "ends after the year 9999") from None


def stop_refusal(stream: ScheduledStream) -> tuple[str, str]:
    """(field, reason) why a stop cannot be asked for the booking as it is now."""
    state = StreamState(stream.state)
    if state in (StreamState.SCHEDULED, StreamState.RETRYING):
        return "state", f"booking is {state}: nothing to stop yet (cancel it instead)"
    if state is StreamState.STARTING:
        return "state", "booking is starting: nothing to stop yet (its start is under way)"
    if state is StreamState.ENDED:
        at = _fmt(stream.ended_at) if stream.ended_at else "an unknown time"
        return "state", f"already ended ({stream.end_reason or 'no reason stored'} at {at})"
    if state in (StreamState.FAILED, StreamState.MISSED, StreamState.CANCELLED):
        return "state", f"booking is {state}: it has no livestream to stop"
    if stream.stop_requested_at is not None:
        return "stop_requested_at", (
            f"a stop was already requested at {_fmt(stream.stop_requested_at)}"
        )
    # Started or live with no stop asked: the UPDATE raced a change that has since been undone.
    return "state", f"cannot stop a booking that is {state} right now; try again"
