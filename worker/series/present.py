"""What callers see of a series: a dict (JSON, HTTP) and text (the CLI), with its occurrences
and the dates a clock change moves."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from models import ScheduledStream, Series
from worker.capacity.forecast import stamp
from worker.series import rules
from worker.series.rules import Occurrence


def series_dict(series: Series) -> dict[str, Any]:
    return {
        "id": str(series.id),
        "ref": series.ref,
        "state": series.state,
        "meeting_id": str(series.meeting_id),
        "account_id": series.account_id,
        "app_id": series.app_id,
        "name": series.name,
        "video_width": series.video_width,
        "video_height": series.video_height,
        "rule": series.rule,
        "exdates": series.exdates.split(),
        "first_date": series.first_date.isoformat(),
        "wall_time": series.wall_time,
        "timezone": series.timezone,
        "duration_seconds": series.duration,
        "start_window": series.start_window,
        "made_until": _at(series.made_until),
        "created_at": _at(series.created_at),
        "updated_at": _at(series.updated_at),
    }


def occurrence_dict(stream: ScheduledStream) -> dict[str, Any]:
    return {
        "id": str(stream.id),
        "ref": stream.external_ref,
        "date": None if stream.series_date is None else stream.series_date.isoformat(),
        "scheduled_at": _at(stream.scheduled_at),
        "scheduled_at_local": local(stream.scheduled_at, stream.timezone),
        "state": stream.state,
        "detached": bool(stream.detached),
    }


def timing_dict(occurrence: Occurrence, zone_name: str) -> dict[str, Any]:
    return {
        "date": occurrence.day.isoformat(),
        "scheduled_at": _at(occurrence.at),
        "scheduled_at_local": local(occurrence.at, zone_name),
        "timing": occurrence.timing.value,
    }


def full_dict(
    series: Series, occurrences: list[ScheduledStream], odd: list[Occurrence]
) -> dict[str, Any]:
    """``show``: the series, the rule for odd wall times and the dates it applies to, and
    its occurrences made so far."""
    return {
        **series_dict(series),
        "wall_time_rule": rules.TIMING_RULE,
        "clock_changes": [timing_dict(o, series.timezone) for o in odd],
        "occurrences": [occurrence_dict(o) for o in occurrences],
    }


HEADER = f"{'REF':<28} {'STATE':<10} {'RULE':<32} {'TIME':<5} {'ZONE':<20} ID"


def render_row(data: dict[str, Any]) -> str:
    return (
        f"{data['ref']:<28} {data['state']:<10} {data['rule']:<32} {data['wall_time']:<5} "
        f"{data['timezone']:<20} {data['id']}"
    )


def render(data: dict[str, Any]) -> str:
    lines = [
        f"series {data['id']}  ref {data['ref']}  ({data['state']})",
        f"  rule:        {data['rule']}"
        + (f"  except {', '.join(data['exdates'])}" if data["exdates"] else ""),
        f"  from:        {data['first_date']} at {data['wall_time']} {data['timezone']}",
        f"  runs:        {data['duration_seconds']:g} s each, start window "
        f"{data['start_window']:g} s",
        f"  meeting:     {data['meeting_id']}",
        f"  made until:  {data['made_until']}",
        f"  wall times:  {data['wall_time_rule']}",
    ]
    for odd in data.get("clock_changes", []):
        lines.append(f"    {odd['date']}: {odd['timing']} -> {odd['scheduled_at_local']}")
    occurrences = data.get("occurrences", [])
    if occurrences:
        lines.append("")
        lines.append(f"  {'DATE':<10}  {'STATE':<10}  {'STARTS (UTC)':<24}  {'LOCAL':<20}  REF")
        for o in occurrences:
            detached = "  (detached)" if o["detached"] else ""
            lines.append(
                f"  {o['date']:<10}  {o['state']:<10}  {o['scheduled_at']:<24}  "
                f"{o['scheduled_at_local']:<20}  {o['ref']}{detached}"
            )
    return "\n".join(lines)


def _at(value: datetime | None) -> str | None:
    return None if value is None else stamp(value)


def local(at: datetime, zone_name: str) -> str:
    """``2027-03-29 19:00 CEST``: the wall time in the zone, and its abbreviation."""
    return at.astimezone(ZoneInfo(zone_name)).strftime("%Y-%m-%d %H:%M %Z")
