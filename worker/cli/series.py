"""`livestreams series ...` and `livestreams capacity`: recurring series, and the starts due
per rate window against the token's budget.

A thin click layer over worker.series.flow and worker.capacity.forecast. A capacity warning
is one line on stderr per instant at risk (exit 0); with --strict the booking is refused
instead (exit 2) and nothing is stored.
"""

from __future__ import annotations

from typing import Any

import click

from models.db import db_now
from worker.bookings.timeparse import parse_instant
from worker.capacity import forecast
from worker.capacity.present import render_report, report_dict
from worker.cli.tools import current_settings, emit, handle_errors, json_option, session_scope
from worker.series import flow, present

STRICT_HELP = (
    "Refuse (exit 2, nothing stored) instead of warning when the token's rate budget could "
    "not start every booking at its instant."
)


def strict_option(func: Any) -> Any:
    return click.option("--strict", is_flag=True, help=STRICT_HELP)(func)


def warn(lines: list[str]) -> None:
    """Capacity warnings: one line each on stderr; the command still succeeds."""
    for line in lines:
        click.echo(f"livestreams: warning: capacity: {line}", err=True)


@click.group("series")
def series() -> None:
    """Recurring series: a rule whose occurrences are booked ahead as ordinary bookings."""


def _fields(func: Any) -> Any:
    options = [
        click.option("--rule", help="RRULE: FREQ=DAILY|WEEKLY|MONTHLY, INTERVAL, BYDAY, "
                     "BYMONTHDAY, COUNT or UNTIL (e.g. FREQ=WEEKLY;BYDAY=MO)."),
        click.option("--at", help="The wall time of each occurrence, HH:MM in --tz."),
        click.option("--tz", help="IANA zone of the wall time (e.g. Europe/Berlin)."),
        click.option("--duration", help="How long each runs: seconds, or 90m, 2h, 1h30m."),
        click.option("--name", help="Livestream name: letters, digits, '-' and '_'."),
        click.option("--width", type=int, help="Video width in pixels (1-8192)."),
        click.option("--height", type=int, help="Video height in pixels (1-8192)."),
        click.option("--start-window", type=float, help="Seconds a start may still be tried."),
        click.option("--except", "exdates", multiple=True,
                     help="A local date YYYY-MM-DD the rule skips (repeatable): EXDATE."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


@series.command("add")
@click.option("--ref", required=True, help="Your id for the series; occurrences get REF:DATE.")
@click.option("--meeting-id", required=True, help="The RealtimeKit meeting (a UUID).")
@_fields
@click.option("--first", help="The first date, YYYY-MM-DD in --tz (default: today there).")
@click.option("--account-id", help="Cloudflare account id [env: CLOUDFLARE_ACCOUNT_ID].")
@click.option("--app-id", help="RealtimeKit app id [env: REALTIMEKIT_APP_ID].")
@strict_option
@json_option
@handle_errors
def add(as_json: bool, exdates: tuple[str, ...], **fields: Any) -> None:
    """Add a series and book its occurrences up to LIVESTREAMS_SERIES_HORIZON days ahead."""
    for required in ("rule", "at", "tz", "duration"):
        if fields.get(required) is None:
            raise click.UsageError(f"--{required} is required", click.get_current_context())
    settings = current_settings()
    with session_scope(settings) as session:
        made = flow.add(session, settings, exdates=list(exdates), **fields)
        data = present.series_dict(made.series)
    verb = "added" if made.created else "already added"
    warn(made.warnings)
    emit(
        as_json,
        {**data, "created": made.created, "made": len(made.made), "warnings": made.warnings},
        f"{verb} series {data['id']}: {len(made.made)} occurrences booked until "
        f"{data['made_until']}",
    )


@series.command("list")
@click.option("--state", type=click.Choice(["active", "cancelled"]), help="Only this state.")
@click.option("--limit", type=int, default=100, show_default=True)
@json_option
@handle_errors
def list_command(state: str | None, limit: int, as_json: bool) -> None:
    """Series by ref."""
    settings = current_settings()
    with session_scope(settings) as session:
        rows = [present.series_dict(s) for s in flow.listing(session, state=state, limit=limit)]
    text = "\n".join([present.HEADER, *(present.render_row(r) for r in rows)])
    emit(as_json, rows, text if rows else "no series")


def _target(func: Any) -> Any:
    func = click.option("--ref", help="Find the series by its ref.")(func)
    return click.argument("series_id", required=False)(func)


@series.command("show")
@_target
@json_option
@handle_errors
def show(series_id: str | None, ref: str | None, as_json: bool) -> None:
    """A series, its occurrences, and the dates a clock change moves its wall time on."""
    settings = current_settings()
    with session_scope(settings) as session:
        found = flow.find(session, series_id, ref=ref)
        now = db_now(session)
        data = present.full_dict(
            found,
            flow.occurrences_of(session, found),
            flow.timing_notes(found, now),
        )
    emit(as_json, data, present.render(data))


@series.command("edit")
@_target
@_fields
@strict_option
@json_option
@handle_errors
def edit(
    series_id: str | None, ref: str | None, as_json: bool, exdates: tuple[str, ...], **fields: Any
) -> None:
    """Change a series; its future occurrences that nobody changed and that have not begun
    follow. An occurrence changed on its own (reschedule, cancel) is left as it is."""
    settings = current_settings()
    with session_scope(settings) as session:
        found = flow.find(session, series_id, ref=ref)
        made = flow.edit(
            session, settings, found, exdates=list(exdates) if exdates else None, **fields
        )
        data = present.series_dict(made.series)
    warn(made.warnings)
    emit(
        as_json,
        {**data, "moved": made.moved, "cancelled": made.cancelled, "made": len(made.made),
         "warnings": made.warnings},
        f"edited series {data['id']}: {made.moved} occurrences moved, {made.cancelled} "
        f"cancelled, {len(made.made)} booked",
    )  # fmt: skip


@series.command("cancel")
@_target
@json_option
@handle_errors
def cancel(series_id: str | None, ref: str | None, as_json: bool) -> None:
    """Cancel a series and its future occurrences that nobody changed and that have not
    begun."""
    settings = current_settings()
    with session_scope(settings) as session:
        made = flow.cancel(session, flow.find(session, series_id, ref=ref))
        data = present.series_dict(made.series)
    emit(
        as_json,
        {**data, "cancelled": made.cancelled},
        f"cancelled series {data['id']} and {made.cancelled} occurrences",
    )


@click.command("capacity")
@click.option("--from", "start", help="From this instant (ISO 8601; default now).")
@click.option("--to", "end", help="To this instant (ISO 8601; default a day after --from).")
@json_option
@handle_errors
def capacity(start: str | None, end: str | None, as_json: bool) -> None:
    """Starts due per rate window against the token's budget, the windows at risk first."""
    settings = current_settings()
    since = None if start is None else parse_instant(start, None, "from")[0]
    until = None if end is None else parse_instant(end, None, "to")[0]
    with session_scope(settings) as session:
        data = report_dict(forecast.report(session, settings, since, until))
    emit(as_json, data, render_report(data))
