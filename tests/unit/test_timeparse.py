from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.bookings.timeparse import describe, describe_duration, parse_duration, parse_instant
from worker.errors import BookingError


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
        # Files of the zone database that are no IANA zone: localtime differs on every host.
        ("2027-06-01 12:00", "localtime", "tz", "unknown IANA time zone"),
        ("2027-06-01 12:00", "posixrules", "tz", "unknown IANA time zone"),
        ("2027-06-01 12:00", "right/UTC", "tz", "unknown IANA time zone"),
        ("2027-06-01 12:00", "posix/Europe/Berlin", "tz", "unknown IANA time zone"),
        ("2027-06-01 12:00", "Europe/Berlin\0", "tz", "unknown IANA time zone"),
        # str.strip() keeps a NUL: a trailing one was read (and stored) as part of the time.
        ("2028-08-01T10:00:00Z\0", None, "at", "control characters"),
        ("2028-08-01T10:00:00Z\x1b", None, "at", "control characters"),
        ("\x002028-08-01T10:00:00Z", None, "at", "control characters"),
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


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (5400, timedelta(hours=1, minutes=30)),
        (0.5, timedelta(milliseconds=500)),
        ("5400", timedelta(seconds=5400)),
        ("90.25", timedelta(seconds=90.25)),
        ("90m", timedelta(minutes=90)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        (" 2H ", timedelta(hours=2)),
        ("45s", timedelta(seconds=45)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        (timedelta(minutes=5), timedelta(minutes=5)),
    ],
)
def test_durations(given: object, expected: timedelta) -> None:
    assert parse_duration(given) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("", "is not a duration"),
        ("h", "is not a duration"),
        ("1.5h", "is not a duration"),
        ("30m1h", "is not a duration"),  # units largest first: a typo, not a sum
        ("1h30", "is not a duration"),
        ("1e3", "is not a duration"),
        ("PT1H", "is not a duration"),
        ("soon", "is not a duration"),
        ("0", "must be positive"),
        ("0m", "must be positive"),
        ("-5", "must be positive"),
        (0, "must be positive"),
        (-60, "must be positive"),
        (timedelta(0), "must be positive"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (True, "must be seconds or a form like 1h30m"),
        ([90], "must be seconds or a form like 1h30m"),
        (1e300, "too long"),
        ("999999999d999999999h", "too long"),
        ("2h\nrm -rf", "is not a duration"),
    ],
)
def test_duration_refusals_name_the_field_on_one_line(given: object, fragment: str) -> None:
    with pytest.raises(BookingError) as err:
        parse_duration(given)  # type: ignore[arg-type]
    assert err.value.field == "duration"
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("length", "text"),
    [
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(hours=24), "1d"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=90.5), "1m30.5s"),
        (timedelta(days=1, seconds=1), "1d1s"),
    ],
)
def test_describe_duration_reads_back(length: timedelta, text: str) -> None:
    assert describe_duration(length) == text
    assert parse_duration(text) == length


def test_describe_duration_of_nothing() -> None:
    assert describe_duration(timedelta(0)) == "0s"
