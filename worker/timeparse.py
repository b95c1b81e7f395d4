"""Turning what a caller typed into one UTC instant, refusing anything that could mean two."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.errors import BookingError


def zone(name: str, field: str = "tz") -> ZoneInfo:
    try:
        if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
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


def _quote(value: str | datetime) -> str:
    # repr keeps a stray newline from splitting the one-line error in two
    return repr(value.strip()) if isinstance(value, str) else value.isoformat()


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
