from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.errors import BookingError
from worker.timeparse import describe, parse_instant


@pytest.mark.parametrize(
    ("at", "tz", "expected"),
    [
        ("2027-10-31T02:30:00+01:00", None, datetime(2027, 10, 31, 1, 30, tzinfo=UTC)),
        ("2027-10-31T02:30:00+02:00", None, datetime(2027, 10, 31, 0, 30, tzinfo=UTC)),
        ("2027-06-01T12:00:00Z", None, datetime(2027, 6, 1, 12, tzinfo=UTC)),
        ("2027-06-01 12:00", "Europe/Berlin", datetime(2027, 6, 1, 10, tzinfo=UTC)),
        ("2027-01-15T09:00", "America/New_York", datetime(2027, 1, 15, 14, tzinfo=UTC)),
        # An explicit offset wins; the zone is then only for display.
        ("2027-06-01T12:00:00+00:00", "Asia/Tokyo", datetime(2027, 6, 1, 12, tzinfo=UTC)),
    ],
)
def test_instants(at: str, tz: str | None, expected: datetime) -> None:
    instant, zone_name = parse_instant(at, tz)
    assert instant == expected
    assert instant.tzinfo is UTC
    assert zone_name == (tz or "UTC")


def test_spring_forward_gap_is_refused_with_both_meanings() -> None:
    with pytest.raises(BookingError) as err:
        parse_instant("2027-03-28 02:30", "Europe/Berlin")
    assert err.value.field == "at"
    assert "does not exist" in str(err.value)
    assert "2027-03-28T00:30:00Z" in str(err.value)
    assert "2027-03-28T01:30:00Z" in str(err.value)


def test_fall_back_repeat_is_refused_with_both_meanings() -> None:
    with pytest.raises(BookingError) as err:
        parse_instant("2027-10-31 02:30", "Europe/Berlin")
    assert "twice" in str(err.value)
    assert "2027-10-31T00:30:00Z" in str(err.value)
    assert "2027-10-31T01:30:00Z" in str(err.value)


@pytest.mark.parametrize(
    ("at", "tz", "field", "fragment"),
    [
        ("tomorrow", None, "at", "not an ISO 8601"),
        ("2027-06-01 12:00", None, "at", "no UTC offset"),
        ("2027-06-01 12:00", "Mars/Olympus", "tz", "unknown IANA time zone"),
        ("2027-06-01 12:00", "../../etc/passwd", "tz", "unknown IANA time zone"),
        ("2027-02-30T10:00:00Z", None, "at", "not an ISO 8601"),
    ],
)
def test_refusals_name_the_field(at: str, tz: str | None, field: str, fragment: str) -> None:
    with pytest.raises(BookingError) as err:
        parse_instant(at, tz)
    assert err.value.field == field
    assert fragment in str(err.value)


def test_describe_shows_utc_and_local() -> None:
    text = describe(datetime(2027, 6, 1, 10, tzinfo=UTC), "Europe/Berlin")
    assert text == "2027-06-01T10:00:00Z (2027-06-01 12:00:00 CEST, Europe/Berlin)"
