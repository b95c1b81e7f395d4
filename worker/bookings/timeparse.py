"""Turning what a caller typed into one UTC instant (or a length of time), refusing anything
that could mean two."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from worker.bookings import plaintext
from worker.errors import BookingError

# Files of the zone database that are not IANA zone names: "localtime" is the host's own zone
# (another meaning on every host), "posixrules" a template, posix/ and right/ copies of the
# database (right/ counts leap seconds, which no clock here does).
_NOT_ZONES = frozenset({"localtime", "posixrules"})
_NOT_ZONE_DIRS = ("posix/", "right/")


@functools.cache
def _zone_names() -> frozenset[str]:
    names = available_timezones() - _NOT_ZONES
    return frozenset(n for n in names if not n.startswith(_NOT_ZONE_DIRS))


def zone(name: str, field: str = "tz") -> ZoneInfo:
    try:
        if name not in _zone_names():
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: with the tzdata package installed, a folder name ("America") or an
        # over-long name reaches the file system before it is refused.
        raise BookingError(field, f"unknown IANA time zone {name!r} (e.g. Europe/Berlin)") from None


# Instants outside these bounds are refused: far ones overflow datetime arithmetic (a deadline
# added to 9999-12-31), and no livestream is booked for 1900.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _fmt(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(value: str | datetime, tz: str | None, field: str = "at") -> tuple[datetime, str]:
    """The UTC instant and the zone name to display it in.

    ``value`` is ISO 8601 with an offset (``Z`` allowed), or a wall time read in ``tz``. A wall
    time that does not exist (spring-forward gap) or exists twice (fall-back) is refused with
    the instants it could mean, rather than guessed at.
    """
    # str.strip() keeps a NUL: "2028-08-01T10:00:00Z\0" was read, and stored, as a time.
    plaintext.check(field, value, BookingError)
    zone_name = tz if tz is not None else "UTC"
    where = zone(zone_name)
    try:
        instant = _instant(value, tz, where, field)
    except OverflowError:
        instant = None
    if instant is None or not EARLIEST <= instant < LATEST:
        raise BookingError(
            field, f"{_quote(value)} is out of range ({EARLIEST.year} to {LATEST.year - 1})"
        )
    return instant, zone_name


def _quote(value: object) -> str:
    # repr keeps a stray newline from splitting the one-line error in two
    if isinstance(value, str):
        return repr(value.strip())
    return value.isoformat() if isinstance(value, datetime) else repr(value)


def _instant(value: str | datetime, tz: str | None, where: ZoneInfo, field: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        text = value.strip()
        if text.endswith(("z", "Z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise BookingError(
                field, f"{_quote(value)} is not an ISO 8601 time (e.g. 2027-03-28T18:00:00+01:00)"
            ) from None
    if parsed.tzinfo is not None and parsed.utcoffset() is not None:
        return parsed.astimezone(UTC)
    if tz is None:
        raise BookingError(
            field, f"{_quote(value)} has no UTC offset: add one (e.g. +01:00 or Z) or give --tz"
        )
    if not EARLIEST - timedelta(days=2) <= parsed.replace(tzinfo=UTC) < LATEST:
        raise OverflowError(parsed)
    return _resolve_wall_time(parsed, where, field)


def _resolve_wall_time(wall: datetime, where: ZoneInfo, field: str) -> datetime:
    early = wall.replace(tzinfo=where, fold=0)
    late = wall.replace(tzinfo=where, fold=1)
    candidates = {early.astimezone(UTC), late.astimezone(UTC)}
    # A wall time exists if it survives the round trip through UTC.
    real = sorted(c for c in candidates if c.astimezone(where).replace(tzinfo=None) == wall)
    if len(real) == 1:
        return real[0]
    if not real:
        # In a gap, fold 0 reads the time with the offset before the change, fold 1 after it.
        meanings = sorted(candidates)
        raise BookingError(
            field,
            f"{wall.isoformat(sep=' ')} does not exist in {where.key} (clocks jump forward); "
            f"did you mean {_fmt(meanings[0])} or {_fmt(meanings[-1])}? "
            "Give the time with an offset to choose",
        )
    raise BookingError(
        field,
        f"{wall.isoformat(sep=' ')} happens twice in {where.key} (clocks go back): "
        f"{_fmt(real[0])} or {_fmt(real[1])}; give the time with an offset to choose "
        f"(e.g. {real[0].astimezone(where).isoformat()})",
    )


def describe(instant: datetime, zone_name: str) -> str:
    """``2027-03-28T16:00:00Z (2027-03-28 18:00 CEST, Europe/Berlin)`` for display."""
    utc = _fmt(instant)
    if zone_name == "UTC":
        return utc
    local = instant.astimezone(ZoneInfo(zone_name))
    return f"{utc} ({local.strftime('%Y-%m-%d %H:%M:%S %Z')}, {zone_name})"


# Seconds ("5400", "5400.5"), or units from the largest down: "2h", "90m", "1h30m", "1d", "45s".
_SECONDS = re.compile(r"-?\d{1,12}(?:\.\d{1,6})?")  # negative: refused as such, not as a typo
_UNITS = re.compile(
    r"(?:(?P<d>\d{1,9})d)?\s*(?:(?P<h>\d{1,9})h)?\s*(?:(?P<m>\d{1,9})m)?\s*"
    r"(?:(?P<s>\d{1,9}(?:\.\d{1,6})?)s)?"
)
_UNIT_NAMES = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(value: str | float | timedelta, field: str = "duration") -> timedelta:
    """A positive length of time: a number of seconds, or a form like ``90m``, ``2h``, ``1h30m``.

    Units go from the largest down (d, h, m, s), each at most once, so ``30m1h`` (a typo more
    likely than a wish) is refused rather than added up.
    """
    try:
        length = _duration(value, field)
    except OverflowError:
        raise BookingError(field, f"{_quote(value)} is too long") from None
    if length <= timedelta(0):
        raise BookingError(field, f"must be positive, got {_quote(value)}")
    return length


def _duration(value: object, field: str) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value != value or value in (float("inf"), float("-inf")):
            raise BookingError(field, f"must be a finite number of seconds, got {value!r}")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise BookingError(field, f"must be seconds or a form like 1h30m, got {value!r}")
    text = value.strip().lower()
    if _SECONDS.fullmatch(text):
        return timedelta(seconds=float(text))
    units = _UNITS.fullmatch(text)
    if not text or units is None:
        raise BookingError(
            field,
            f"{_quote(value)} is not a duration: give seconds (5400) or a form like 90m, 2h, 1h30m",
        )
    parts = {_UNIT_NAMES[k]: float(v) for k, v in units.groupdict().items() if v is not None}
    return timedelta(**parts)


def describe_duration(length: timedelta) -> str:
    """``1h30m``, ``45s``, ``1d2h``: the form parse_duration reads, for messages and display."""
    seconds = length.total_seconds()
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    fraction = seconds - whole
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if secs or fraction or not parts:
        parts.append(f"{secs + fraction:g}s")
    return "".join(parts)
