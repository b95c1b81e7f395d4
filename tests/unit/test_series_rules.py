"""The series calendar: RRULE subset in, instants out, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from worker.errors import BookingError
from worker.series import rules
from worker.series.rules import Timing

BERLIN = ZoneInfo("Europe/Berlin")
EVER = datetime(2000, 1, 1, tzinfo=UTC)
LATER = datetime(2100, 1, 1, tzinfo=UTC)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def expand(text, first, wall="19:00", zone=BERLIN, *, after=EVER, until=LATER, skip=()):
    found = rules.occurrences(
        rules.parse_rule(text),
        first,
        rules.parse_wall_time(wall),
        zone,
        after=after,
        until=until,
        skip=skip,
    )
    return [(o.day, o.at, o.timing) for o in found]


def test_weekly_19_00_berlin_across_the_march_and_october_changes() -> None:
    """Mondays at 19:00 local: 18:00 UTC in winter, 17:00 UTC in summer, back in November."""
    got = expand("FREQ=WEEKLY;BYDAY=MO", date(2027, 3, 15), until=_utc(2027, 11, 9))
    by_day = {day: at for day, at, _ in got}
    assert by_day[date(2027, 3, 15)] == _utc(2027, 3, 15, 18)
    assert by_day[date(2027, 3, 22)] == _utc(2027, 3, 22, 18)  # before 28 March: CET
    assert by_day[date(2027, 3, 29)] == _utc(2027, 3, 29, 17)  # after: CEST
    assert by_day[date(2027, 10, 25)] == _utc(2027, 10, 25, 17)  # before 31 October: CEST
    assert by_day[date(2027, 11, 1)] == _utc(2027, 11, 1, 18)  # after: CET again
    assert by_day[date(2027, 11, 8)] == _utc(2027, 11, 8, 18)
    # Every one is 19:00 on a Monday in Berlin, and nothing needed the odd-time rule.
    assert all(at.astimezone(BERLIN).time() == time(19) for at in by_day.values())
    assert all(at.astimezone(BERLIN).weekday() == 0 for at in by_day.values())
    assert {timing for *_, timing in got} == {Timing.EXACT}
    assert len(got) == 35


@pytest.mark.parametrize(
    ("day", "wall", "expected_utc", "timing"),
    [
        # Clocks jump 02:00 -> 03:00: 02:30 does not exist, it starts at 03:30 CEST.
        (date(2027, 3, 28), "02:30", _utc(2027, 3, 28, 1, 30), Timing.SHIFTED),
        (date(2027, 3, 28), "02:00", _utc(2027, 3, 28, 1, 0), Timing.SHIFTED),
        (date(2027, 3, 28), "03:00", _utc(2027, 3, 28, 1, 0), Timing.EXACT),
        (date(2027, 3, 28), "01:59", _utc(2027, 3, 28, 0, 59), Timing.EXACT),
        # Clocks go back 03:00 -> 02:00: 02:30 exists twice, the first (CEST) is taken.
        (date(2027, 10, 31), "02:30", _utc(2027, 10, 31, 0, 30), Timing.FIRST_OF_TWO),
        (date(2027, 10, 31), "02:00", _utc(2027, 10, 31, 0, 0), Timing.FIRST_OF_TWO),
        (date(2027, 10, 31), "03:00", _utc(2027, 10, 31, 2, 0), Timing.EXACT),
        (date(2027, 10, 31), "19:00", _utc(2027, 10, 31, 18, 0), Timing.EXACT),
    ],
)
def test_a_wall_time_a_clock_change_makes_odd_follows_the_one_rule(
    day, wall, expected_utc, timing
) -> None:
    placed = rules.place(day, rules.parse_wall_time(wall), BERLIN)
    assert (placed.at, placed.timing) == (expected_utc, timing)


def test_other_zones_change_on_their_own_dates() -> None:
    # New York moves on 14 March and 7 November 2027: Friday 09:00 local.
    ny = ZoneInfo("America/New_York")
    got = expand("FREQ=WEEKLY;BYDAY=FR", date(2027, 3, 5), "09:00", ny, until=_utc(2027, 3, 20))
    assert [at for _, at, _ in got] == [_utc(2027, 3, 5, 14), _utc(2027, 3, 12, 14),
                                        _utc(2027, 3, 19, 13)]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "first", "days"),
    [
        ("FREQ=DAILY;COUNT=3", date(2027, 1, 30), ["2027-01-30", "2027-01-31", "2027-02-01"]),
        ("FREQ=DAILY;INTERVAL=2;COUNT=3", date(2027, 1, 1),
         ["2027-01-01", "2027-01-03", "2027-01-05"]),
        ("FREQ=WEEKLY;BYDAY=TU,TH;COUNT=4", date(2027, 1, 4),
         ["2027-01-05", "2027-01-07", "2027-01-12", "2027-01-14"]),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;UNTIL=20270201", date(2027, 1, 4),
         ["2027-01-04", "2027-01-18", "2027-02-01"]),
        ("FREQ=MONTHLY;BYMONTHDAY=31;COUNT=3", date(2027, 1, 1),
         ["2027-01-31", "2027-03-31", "2027-05-31"]),  # months without a 31st are skipped
        ("FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=3", date(2027, 1, 1),
         ["2027-01-31", "2027-02-28", "2027-03-31"]),
        ("FREQ=MONTHLY;BYDAY=-1FR;COUNT=2", date(2027, 1, 1), ["2027-01-29", "2027-02-26"]),
        ("RRULE:FREQ=MONTHLY;BYDAY=1MO;COUNT=2", date(2027, 1, 1), ["2027-01-04", "2027-02-01"]),
        ("freq=weekly;byday=mo;until=20270112T000000Z", date(2027, 1, 4),
         ["2027-01-04", "2027-01-11"]),
    ],
)  # fmt: skip
def test_the_rule_subset(text, first, days) -> None:
    assert [d.isoformat() for d, _, _ in expand(text, first)] == days


def test_exdates_skip_dates_and_count_still_counts_them() -> None:
    got = expand("FREQ=DAILY;COUNT=4", date(2027, 1, 1), skip=[date(2027, 1, 2)])
    assert [d.isoformat() for d, _, _ in got] == ["2027-01-01", "2027-01-03", "2027-01-04"]


def test_the_window_is_half_open_and_count_counts_from_the_first_date() -> None:
    first = date(2027, 1, 1)
    text = "FREQ=DAILY;COUNT=5"
    after = _utc(2027, 1, 2, 18)  # the 2 January occurrence itself: excluded
    got = expand(text, first, after=after, until=_utc(2027, 1, 4, 18))
    assert [d.isoformat() for d, _, _ in got] == ["2027-01-03", "2027-01-04"]
    assert [d.isoformat() for d, _, _ in expand(text, first, after=_utc(2027, 1, 5, 18))] == []


def test_an_open_rule_stops_at_the_window() -> None:
    got = expand("FREQ=DAILY", date(2027, 1, 1), after=_utc(2027, 6, 1), until=_utc(2027, 6, 4))
    assert [d.isoformat() for d, _, _ in got] == ["2027-06-01", "2027-06-02", "2027-06-03"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("FREQ=YEARLY", "FREQ must be DAILY, WEEKLY or MONTHLY"),
        ("FREQ=HOURLY", "FREQ must be"),
        ("BYDAY=MO", "FREQ must be"),
        ("FREQ=WEEKLY;BYHOUR=9", "BYHOUR is not supported"),
        ("FREQ=WEEKLY;BYDAY=XX", "BYDAY 'XX' is not a day"),
        ("FREQ=WEEKLY;BYDAY=1MO", "a numbered BYDAY (1MO, -1FR) needs FREQ=MONTHLY"),
        ("FREQ=MONTHLY;BYMONTHDAY=32", "BYMONTHDAY '32' must be 1 to 31"),
        ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY '0'"),
        ("FREQ=DAILY;COUNT=0", "COUNT must be a whole number from 1 to 1000"),
        ("FREQ=DAILY;COUNT=2;UNTIL=20270101", "COUNT and UNTIL cannot both be given"),
        ("FREQ=DAILY;UNTIL=2027-01-01", "UNTIL must be a date YYYYMMDD"),
        ("FREQ=DAILY;INTERVAL=x", "INTERVAL must be a whole number"),
        ("FREQ=DAILY;FREQ=WEEKLY", "FREQ is given twice"),
        ("FREQ", "'FREQ' is not KEY=VALUE"),
    ],
)
def test_a_rule_outside_the_subset_is_refused_naming_the_part(text, says) -> None:
    with pytest.raises(BookingError) as refused:
        rules.parse_rule(text)
    assert refused.value.field == "rule" and says in refused.value.problem


@pytest.mark.parametrize("wall", ["7pm", "24:00", "19:60", "19", "19:00:00", ""])
def test_a_wall_time_is_hh_mm(wall) -> None:
    with pytest.raises(BookingError) as refused:
        rules.parse_wall_time(wall)
    assert refused.value.field == "at"


def test_a_rule_is_normalised() -> None:
    assert rules.parse_rule(" rrule:byday=mo;freq=weekly ").text == "FREQ=WEEKLY;BYDAY=MO"
