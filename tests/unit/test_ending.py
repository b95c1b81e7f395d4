"""When a booking ends (ends_at / duration) and why a stop is refused: pure rules, no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from models import ScheduledStream
from worker.bookings.ending import end_instant, stop_refusal
from worker.errors import BookingError

START = datetime(2031, 5, 1, 17, 0, tzinfo=UTC)  # 19:00 in Berlin
DAY = 86400.0


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, None),
        ({"duration": "1h30m"}, START + timedelta(hours=1, minutes=30)),
        ({"duration": 5400}, START + timedelta(seconds=5400)),
        ({"duration": "24h"}, START + timedelta(days=1)),  # exactly the maximum
        ({"ends_at": "2031-05-01T18:00:00Z"}, START + timedelta(hours=1)),
        ({"ends_at": "2031-05-01T20:00:00+02:00"}, START + timedelta(hours=1)),
        ({"ends_at": "2031-05-01 21:00", "tz": "Europe/Berlin"}, START + timedelta(hours=2)),
        ({"ends_at": START + timedelta(minutes=1)}, START + timedelta(minutes=1)),
        # An offset wins over the zone, as for the start.
        ({"ends_at": "2031-05-01T18:00:00Z", "tz": "Asia/Tokyo"}, START + timedelta(hours=1)),
    ],
)
def test_end_instants(fields: dict, expected: datetime | None) -> None:
    assert end_instant(START, max_duration=DAY, **fields) == expected


@pytest.mark.parametrize(
    ("start", "fields", "max_duration", "field", "fragment"),
    [
        (START, {"ends_at": "2031-05-01T18:00:00Z", "duration": "1h"}, DAY, "ends_at", "not both"),
        (START, {"ends_at": "2031-05-01T17:00:00Z"}, DAY, "ends_at", "is not after the start"),
        (START, {"ends_at": "2031-05-01T16:59:59Z"}, DAY, "ends_at", "is not after the start"),
        (START, {"ends_at": "2031-05-02T17:00:01Z"}, DAY, "ends_at", "at most 1d"),
        (START, {"duration": "24h1s"}, DAY, "duration", "would last 1d1s; at most 1d"),
        (START, {"duration": "2h"}, 3600.0, "duration", "at most 1h (LIVESTREAMS_MAX_DURATION)"),
        (START, {"duration": "0"}, DAY, "duration", "must be positive"),
        (START, {"duration": "soon"}, DAY, "duration", "is not a duration"),
        (START, {"ends_at": "tonight"}, DAY, "ends_at", "not an ISO 8601 time"),
        (START, {"ends_at": "2031-05-01 20:00"}, DAY, "ends_at", "no UTC offset"),
        # The same DST rules as --at: a wall time that does not exist or exists twice.
        (
            datetime(2031, 3, 29, 23, 0, tzinfo=UTC),
            {"ends_at": "2031-03-30 02:30", "tz": "Europe/Berlin"},
            DAY,
            "ends_at",
            "does not exist in Europe/Berlin",
        ),
        (
            datetime(2031, 10, 25, 22, 0, tzinfo=UTC),
            {"ends_at": "2031-10-26 02:30", "tz": "Europe/Berlin"},
            DAY,
            "ends_at",
            "happens twice in Europe/Berlin",
        ),
        # A huge maximum must still not overflow the date.
        (
            datetime(8999, 12, 31, tzinfo=UTC),
            {"duration": "999999d"},
            1e12,
            "duration",
            "after the year 9999",
        ),
    ],
)  # fmt: skip
def test_end_refusals_name_the_field(
    start: datetime, fields: dict, max_duration: float, field: str, fragment: str
) -> None:
    with pytest.raises(BookingError) as err:
        end_instant(start, max_duration=max_duration, **fields)
    assert err.value.field == field
    assert fragment in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


AT = datetime(2031, 5, 1, 17, 30, tzinfo=UTC)
NOTHING = "nothing to stop yet"


def _row(state: str, **columns: object) -> ScheduledStream:
    return ScheduledStream(id=uuid.uuid4(), state=state, **columns)


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        (_row("scheduled"), "state", f"booking is scheduled: {NOTHING} (cancel it instead)"),
        (_row("retrying"), "state", f"booking is retrying: {NOTHING} (cancel it instead)"),
        (_row("starting"), "state", f"booking is starting: {NOTHING} (its start is under way)"),
        (
            _row("ended", ended_at=AT, end_reason="ops_stop"),
            "state",
            "already ended (ops_stop at 2031-05-01T17:30:00Z)",
        ),
        (
            _row("ended", ended_at=AT, end_reason="ended_upstream"),
            "state",
            "already ended (ended_upstream at 2031-05-01T17:30:00Z)",
        ),
        (_row("failed"), "state", "booking is failed: it has no livestream to stop"),
        (_row("missed"), "state", "booking is missed: it has no livestream to stop"),
        (_row("cancelled"), "state", "booking is cancelled: it has no livestream to stop"),
        (
            _row("live", stop_requested_at=AT),
            "stop_requested_at",
            "a stop was already requested at 2031-05-01T17:30:00Z",
        ),
    ],
)  # fmt: skip
def test_stop_refusals_say_why(row: ScheduledStream, field: str, reason: str) -> None:
    assert stop_refusal(row) == (field, reason)
