"""Pure rules of a recurring series: reading its RRULE subset, and the instants it means.

A series is an RFC 5545 RRULE subset (FREQ=DAILY|WEEKLY|MONTHLY, INTERVAL, BYDAY,
BYMONTHDAY, COUNT or UNTIL; EXDATE as a list of local dates) from a first local date, at one
wall time in one IANA zone. The dates come from ``dateutil.rrule`` over *local* dates, and
only then does each date's wall time become an instant in the zone: 19:00 in Europe/Berlin
is 18:00 UTC in winter and 17:00 UTC in summer.

The one rule for wall times that a date's daylight-saving change makes odd (``Timing``):
- a wall time that does not exist that day (clocks jump forward over it) is moved forward
  by the jump: 02:30 on a day clocks go from 02:00 to 03:00 starts at 03:30;
- a wall time that exists twice (clocks go back over it) is the first of the two, the one
  still on summer time.
Both are what RFC 5545 (section 3.3.5) asks of a DTSTART with a TZID, and what ``zoneinfo``
gives for ``fold=0``. ``livestreams series show`` names the dates they apply to.

Nothing here reads a clock or a database: every decision is a table test
(tests/unit/test_series_rules.py).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from dateutil import rrule

from worker.errors import BookingError

FIELD = "rule"
# At most this many occurrences are read out of one rule for one window (a DAILY rule over
# a 30-day horizon has 30): a bound on the work of a rule with no COUNT or UNTIL.
MAX_OCCURRENCES = 1000
_FREQS: dict[str, Literal[0, 1, 2, 3, 4, 5, 6]] = {
    "DAILY": rrule.DAILY,
    "WEEKLY": rrule.WEEKLY,
    "MONTHLY": rrule.MONTHLY,
}
_DAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}
_BYDAY = re.compile(r"([+-]?[1-5])?(MO|TU|WE|TH|FR|SA|SU)")
_WALL = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_KEYS = ("FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "COUNT", "UNTIL")


class Timing(enum.StrEnum):
    """How an occurrence's wall time became its instant."""

    EXACT = "exact"  # the wall time exists once that day
    SHIFTED = "shifted"  # it did not exist (clocks went forward): moved on by the jump
    FIRST_OF_TWO = "first_of_two"  # it existed twice (clocks went back): the first one


TIMING_RULE = (
    "a wall time that does not exist on a date (clocks go forward) starts later by the jump; "
    "one that exists twice (clocks go back) starts at the first of the two"
)


@dataclass(frozen=True)
class Rule:
    """A checked rule: what ``dateutil.rrule`` is given."""

    text: str  # normalised: KEY=VALUE;... in the order of _KEYS
    freq: Literal[0, 1, 2, 3, 4, 5, 6]  # dateutil's YEARLY..SECONDLY; here DAILY..MONTHLY
    interval: int = 1
    byweekday: tuple[rrule.weekday, ...] = ()
    bymonthday: tuple[int, ...] = ()
    count: int | None = None
    until: date | None = None


@dataclass(frozen=True)
class Occurrence:
    day: date  # the local date the rule gives
    at: datetime  # its instant, UTC
    timing: Timing


def parse_rule(text: str) -> Rule:
    """The rule in ``text`` (``FREQ=WEEKLY;BYDAY=MO``, an optional ``RRULE:`` prefix), or
    BookingError naming the part that is not in the subset."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    parts: dict[str, str] = {}
    for part in filter(None, body.split(";")):
        key, sep, value = part.partition("=")
        key = key.strip().upper()
        if not sep or not value.strip():
            raise BookingError(FIELD, f"{part!r} is not KEY=VALUE")
        if key not in _KEYS:
            raise BookingError(FIELD, f"{key} is not supported (only {', '.join(_KEYS)})")
        if key in parts:
            raise BookingError(FIELD, f"{key} is given twice")
        parts[key] = value.strip().upper()
    freq = parts.get("FREQ")
    if freq not in _FREQS:
        raise BookingError(FIELD, "FREQ must be DAILY, WEEKLY or MONTHLY")
    if "COUNT" in parts and "UNTIL" in parts:
        raise BookingError(FIELD, "COUNT and UNTIL cannot both be given (RFC 5545)")
    rule = Rule(
        text=";".join(f"{k}={parts[k]}" for k in _KEYS if k in parts),
        freq=_FREQS[freq],
        interval=_number(parts, "INTERVAL", 1, 1, 366),
        byweekday=_byday(parts.get("BYDAY"), freq),
        bymonthday=_bymonthday(parts.get("BYMONTHDAY")),
        count=_number(parts, "COUNT", None, 1, MAX_OCCURRENCES) if "COUNT" in parts else None,
        until=_until(parts["UNTIL"]) if "UNTIL" in parts else None,
    )
    return rule


def parse_wall_time(value: str, field: str = "at") -> time:
    """``HH:MM`` (24 h) as a time of day, or BookingError."""
    match = _WALL.fullmatch(value.strip())
    if match is None:
        raise BookingError(field, f"must be a wall time HH:MM (24 h), got {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


def parse_exdates(values: Iterable[str]) -> tuple[date, ...]:
    """Local dates (YYYY-MM-DD) the rule skips, sorted, or BookingError naming ``exdates``."""
    days = set()
    for value in values:
        try:
            days.add(date.fromisoformat(value.strip()))
        except ValueError:
            raise BookingError("exdates", f"must be dates YYYY-MM-DD, got {value!r}") from None
    return tuple(sorted(days))


def occurrences(
    rule: Rule,
    first: date,
    wall: time,
    zone: ZoneInfo,
    *,
    after: datetime,
    until: datetime,
    skip: Iterable[date] = (),
) -> list[Occurrence]:
    """The rule's occurrences whose instant falls in (``after``, ``until``], oldest first.

    COUNT counts from ``first`` whatever the window, as RFC 5545 does: a window later in the
    series never sees more occurrences than the rule has.
    """
    skipped = set(skip)
    found: list[Occurrence] = []
    # Local dates a day either side of the window: a zone's offset moves the instant by at
    # most a day.
    last_day = until.astimezone(zone).date() + timedelta(days=1)
    for start in _dates(rule, first, wall, last_day):
        day = start.date()
        if day in skipped:
            continue
        occurrence = place(day, wall, zone)
        if occurrence.at <= after:
            continue
        if occurrence.at > until or len(found) >= MAX_OCCURRENCES:
            break
        found.append(occurrence)
    return found


def place(day: date, wall: time, zone: ZoneInfo) -> Occurrence:
    """The instant of ``wall`` on ``day`` in ``zone``, by the one rule (``Timing``)."""
    first = datetime.combine(day, wall, tzinfo=zone)  # fold=0: the first, or before a gap
    second = first.replace(fold=1)
    at = first.astimezone(UTC)
    if first.utcoffset() == second.utcoffset():
        return Occurrence(day, at, Timing.EXACT)
    if at.astimezone(zone).replace(tzinfo=None) != first.replace(tzinfo=None):
        # Round trip differs: the wall time is in a gap. fold=0 reads it with the offset from
        # before the jump, which is the wall time moved on by the jump (RFC 5545 3.3.5).
        return Occurrence(day, at, Timing.SHIFTED)
    return Occurrence(day, at, Timing.FIRST_OF_TWO)


def _dates(rule: Rule, first: date, wall: time, last_day: date) -> Iterable[datetime]:
    end = last_day if rule.until is None else min(last_day, rule.until)
    # Floating local times: DST never touches the date arithmetic. COUNT bounds the rule by
    # itself (dateutil refuses COUNT with UNTIL, as RFC 5545 does); the caller stops at the
    # window's end.
    return rrule.rrule(
        rule.freq,
        dtstart=datetime.combine(first, wall),
        interval=rule.interval,
        byweekday=rule.byweekday or None,
        bymonthday=rule.bymonthday or None,
        count=rule.count,
        until=None if rule.count else datetime.combine(end, wall),
        cache=False,
    )


def _number(parts: dict[str, str], key: str, default: int | None, low: int, high: int) -> int:
    raw = parts.get(key)
    if raw is None:
        assert default is not None
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BookingError(FIELD, f"{key} must be a whole number from {low} to {high}")
    return int(raw)


def _byday(raw: str | None, freq: str) -> tuple[rrule.weekday, ...]:
    if raw is None:
        return ()
    days = []
    for item in raw.split(","):
        match = _BYDAY.fullmatch(item.strip())
        if match is None:
            raise BookingError(FIELD, f"BYDAY {item!r} is not a day (MO..SU, or 1MO, -1FR)")
        nth, name = match.group(1), match.group(2)
        if nth is not None and freq != "MONTHLY":
            raise BookingError(FIELD, "a numbered BYDAY (1MO, -1FR) needs FREQ=MONTHLY")
        weekday = rrule.weekday(_DAYS[name])
        days.append(weekday(int(nth)) if nth is not None else weekday)
    return tuple(days)


def _bymonthday(raw: str | None) -> tuple[int, ...]:
    if raw is None:
        return ()
    days = []
    for item in raw.split(","):
        item = item.strip()
        value = int(item) if re.fullmatch(r"-?\d{1,2}", item) else 0
        if not (1 <= value <= 31 or -31 <= value <= -1):
            raise BookingError(FIELD, f"BYMONTHDAY {item!r} must be 1 to 31, or -31 to -1")
        days.append(value)
    return tuple(days)


def _until(raw: str) -> date:
    """UNTIL as a local date (the last day an occurrence may fall on): YYYYMMDD, or a
    YYYYMMDDTHHMMSS[Z] whose date is taken."""
    match = re.fullmatch(r"(\d{8})(T\d{6}Z?)?", raw)
    try:
        if match is None:
            raise ValueError(raw)
        return datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        raise BookingError(FIELD, f"UNTIL must be a date YYYYMMDD, got {raw!r}") from None
