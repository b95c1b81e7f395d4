"""The `livestreams` command: a thin click layer over worker.bookings.booking and friends.

Exit codes: 0 success, 2 bad input (arguments, a refused booking, a bad setting),
1 any other failure (database unreachable, a key that cannot decrypt, ...).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from worker import logformat
from worker.bookings import booking, listing, observe
from worker.bookings.present import (
    attempt_dict,
    event_dict,
    explain,
    reading_cipher,
    render_attempt,
    render_event,
    render_row,
    render_stream,
    stream_dict,
)
from worker.capacity import forecast
from worker.capacity.forecast import booked
from worker.cli.api import api_key, serve
from worker.cli.series import capacity, series, strict_option, warn
from worker.cli.tools import (
    EXIT_FAILURE,
    P,
    R,
    current_settings,
    emit,
    handle_errors,
    json_option,
    safe_url,
    session_scope,
)
from worker.cli.webhooks import webhooks
from worker.crypto import new_key
from worker.errors import SettingsError
from worker.settings import log_format_from_env

ENDS_AT_HELP = (
    "When to stop the livestream, read like --at (default: it runs until it ends upstream); "
    "at most LIVESTREAMS_MAX_DURATION (default 24h) after the start."
)
DURATION_HELP = "Or how long it runs: seconds, or a form like 90m, 2h, 1h30m."


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="livestream-scheduler")
def cli() -> None:
    """Start booked Cloudflare RealtimeKit livestreams once, on time, and show what happened.

    Settings come from the environment: LIVESTREAMS_DATABASE_URL (default
    sqlite:///livestreams.db), LIVESTREAMS_BROKER_URL, CLOUDFLARE_API_TOKEN,
    CLOUDFLARE_ACCOUNT_ID, REALTIMEKIT_APP_ID, LIVESTREAMS_SECRET_KEY and the tunables listed in
    docs/configuration.md.

    Exit codes: 0 success, 2 bad input or a bad setting, 1 any other failure.
    """


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@json_option
@handle_errors
def db_upgrade(as_json: bool) -> None:
    """Create or upgrade the schema to the newest migration (alembic upgrade head)."""
    from worker.cli.migrate import upgrade

    settings = current_settings()
    upgrade(settings.database_url)
    url = safe_url(settings.database_url)
    emit(as_json, {"database": url, "revision": "head"}, f"database {url} is at head")


@cli.command()
@click.option("--meeting-id", required=True, help="The RealtimeKit meeting (a UUID).")
@click.option(
    "--at",
    required=True,
    help="Start instant: ISO 8601 with an offset (2027-03-28T18:00:00+02:00), "
    "or a wall time read in --tz.",
)
@click.option("--tz", help="IANA zone for a wall time, and for display (default UTC).")
@click.option("--account-id", help="Cloudflare account id [env: CLOUDFLARE_ACCOUNT_ID].")
@click.option("--app-id", help="RealtimeKit app id [env: REALTIMEKIT_APP_ID].")
@click.option("--name", help="Livestream name: letters, digits, '-' and '_'.")
@click.option("--width", type=int, help="Video width in pixels (1-8192).")
@click.option("--height", type=int, help="Video height in pixels (1-8192).")
@click.option("--ref", "external_ref", help="Your own id: booking it again is a no-op.")
@click.option(
    "--start-window",
    type=float,
    help="Seconds after the instant during which a start may still be tried "
    "[env: LIVESTREAMS_START_WINDOW, default 900].",
)
@click.option("--ends-at", help=ENDS_AT_HELP)
@click.option("--duration", help=DURATION_HELP)
@strict_option
@json_option
@handle_errors
def schedule(as_json: bool, strict: bool, **fields: Any) -> None:
    """Book a livestream to start at an instant (and, if given, to stop at another)."""
    settings = current_settings()
    with session_scope(settings) as session:
        result = booking.schedule(session, settings, **fields)
        data = stream_dict(result.stream)
        warnings = forecast.guard(session, settings, booked(result), strict=strict)
    warn(warnings)
    verb = "booked" if result.created else "already booked"
    emit(
        as_json, {**data, "created": result.created}, f"{verb} {data['id']}\n{render_stream(data)}"
    )


@cli.command("list")
@click.option("--state", "states", multiple=True, help="Only these states (repeatable).")
@click.option(
    "--problem",
    "problems",
    multiple=True,
    help="Only bookings flagged so (repeatable): not_live, errored, stop_failed.",
)
@click.option("--meeting-id", help="Only this meeting.")
@click.option("--from", "start", help="Only starts at or after this ISO 8601 instant.")
@click.option("--to", "end", help="Only starts before this ISO 8601 instant.")
@click.option("--limit", type=int, default=100, show_default=True)
@json_option
@handle_errors
def list_command(as_json: bool, **filters: Any) -> None:
    """Bookings ordered by start time."""
    settings = current_settings()
    cipher = reading_cipher(settings, reveal=False)
    with session_scope(settings) as session:
        rows = [stream_dict(s, cipher) for s in listing.list_streams(session, **filters)]
    emit(as_json, rows, "\n".join(render_row(r) for r in rows) or "no bookings")


def _target(func: Callable[P, R]) -> Callable[P, R]:
    func = click.option("--ref", help="Find the booking by your external reference.")(func)
    return click.argument("stream_id", required=False)(func)


@cli.command()
@_target
@click.option("--reveal-key", is_flag=True, help="Print the stream key in the clear.")
@json_option
@handle_errors
def show(stream_id: str | None, ref: str | None, reveal_key: bool, as_json: bool) -> None:
    """What happened to one booking, and why, with every attempt and every status seen."""
    settings = current_settings()
    cipher = reading_cipher(settings, reveal_key)
    with session_scope(settings) as session:
        stream = booking.find(session, stream_id, ref=ref)
        tried = booking.attempts(session, stream)
        data = stream_dict(stream, cipher, reveal=reveal_key)
        why = explain(stream, tried)
        rows = [attempt_dict(a) for a in tried]
        seen = [event_dict(e, stream.timezone) for e in observe.timeline(session, stream.id)]
    text = render_stream(data, why)
    if rows:
        text += "\n\nattempts:\n" + "\n".join("  " + render_attempt(r) for r in rows)
    if seen:
        text += "\n\ntimeline:\n" + "\n".join("  " + render_event(e) for e in seen)
    emit(as_json, {**data, "why": why, "attempt_log": rows, "timeline": seen}, text)


@cli.command()
@_target
@json_option
@handle_errors
def attempts(stream_id: str | None, ref: str | None, as_json: bool) -> None:
    """Every call made to the API for one booking, oldest first."""
    settings = current_settings()
    with session_scope(settings) as session:
        stream = booking.find(session, stream_id, ref=ref)
        rows = [attempt_dict(a) for a in booking.attempts(session, stream)]
    emit(as_json, rows, "\n".join(render_attempt(r) for r in rows) or "no attempts yet")


@cli.command()
@_target
@json_option
@handle_errors
def cancel(stream_id: str | None, ref: str | None, as_json: bool) -> None:
    """Cancel a booking that is scheduled or waiting to retry."""
    settings = current_settings()
    with session_scope(settings) as session:
        stream = booking.cancel(session, booking.find(session, stream_id, ref=ref))
        data = stream_dict(stream)
    emit(as_json, data, f"cancelled {data['id']}")


@cli.command()
@_target
@json_option
@handle_errors
def stop(stream_id: str | None, ref: str | None, as_json: bool) -> None:
    """Ask for a started or live livestream to be stopped now (by the tracking run)."""
    settings = current_settings()
    with session_scope(settings) as session:
        stream = booking.stop(session, booking.find(session, stream_id, ref=ref))
        data = stream_dict(stream)
    emit(
        as_json,
        data,
        f"stop of {data['id']} requested at {data['stop_requested_at']}; "
        "the livestream is stopped upstream on its next tracking run",
    )


@cli.command()
@_target
@click.option("--at", help="When to try again (default: now).")
@click.option("--start-window", type=float, help="Seconds the new attempt may take to start.")
@json_option
@handle_errors
def retry(
    stream_id: str | None,
    ref: str | None,
    at: str | None,
    start_window: float | None,
    as_json: bool,
) -> None:
    """Try a failed or missed booking again; its history is kept."""
    settings = current_settings()
    with session_scope(settings) as session:
        stream = booking.find(session, stream_id, ref=ref)
        stream = booking.retry(session, settings, stream, at=at, start_window=start_window)
        data = stream_dict(stream)
    emit(as_json, data, f"{data['id']} is due again at {data['due_at']}")


@cli.command()
@_target
@click.option("--at", required=True, help="The new start instant (as for schedule).")
@click.option("--tz", help="IANA zone for a wall time (default: the booking's zone).")
@click.option("--ends-at", help="A new end, read like --at (default: the booked length kept).")
@click.option("--duration", help=DURATION_HELP)
@json_option
@handle_errors
def reschedule(
    stream_id: str | None,
    ref: str | None,
    at: str,
    tz: str | None,
    ends_at: str | None,
    duration: str | None,
    as_json: bool,
) -> None:
    """Move a booking that has not started to another instant; its end moves with it."""
    settings = current_settings()
    with session_scope(settings) as session:
        stream = booking.find(session, stream_id, ref=ref)
        stream = booking.reschedule(
            session, settings, stream, at=at, tz=tz, ends_at=ends_at, duration=duration
        )
        data = stream_dict(stream)
    emit(as_json, data, f"{data['id']} now starts at {data['scheduled_at_local']}")


@cli.command()
@json_option
@handle_errors
def status(as_json: bool) -> None:
    """Counts per state, overdue and stuck rows, the last dispatch tick, provider webhooks.

    Exits 1 when the dispatcher is stale or rows are overdue or stuck, so it can serve as a
    health check [stale after LIVESTREAMS_STALE_AFTER seconds, default 30].
    """
    from worker.health import check, render

    settings = current_settings()
    with session_scope(settings) as session:
        health = check(session, settings)
    emit(as_json, health.as_dict(), render(health))
    if not health.healthy:
        sys.exit(EXIT_FAILURE)


@cli.command()
@click.option(
    "--dir",
    "workdir",
    default=".demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the demo keeps its database, broker and logs (emptied first).",
)
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait for the end.")
@click.option(
    "--keep",
    is_flag=True,
    help="Stay up after the run (API, ops page, worker, beat, fake API) until Ctrl-C.",
)
def demo(workdir: str, timeout: float, keep: bool) -> None:
    """Run the whole pipeline locally: fake API, SQLite, real beat and worker processes.

    Books five streams a few seconds ahead (clean, 503 first, 429 first, refused, one with an
    end), prints each stored result as it lands, then a table of every case, and exits 0 once
    each has come out as its case expects, 1 otherwise (with --keep: when stopped by Ctrl-C).
    """
    from pathlib import Path

    from worker.dev.demo import run_demo

    try:
        code = run_demo(Path(workdir).resolve(), timeout, click.echo, keep=keep)
    except KeyboardInterrupt:
        click.echo("interrupted; every demo process was stopped", err=True)
        code = 130
    sys.exit(code)


@cli.command("fake-api")
@click.option("--host", default="127.0.0.1", show_default=True, help="A loopback address.")
@click.option("--port", default=8787, show_default=True, type=int)
@click.option(
    "--token",
    default="fake-token",
    show_default=True,
    help="The bearer token the fake accepts (point CLOUDFLARE_API_TOKEN at it).",
)
@click.option("--live-after", type=float, help="Seconds until a new livestream turns LIVE.")
@click.option(
    "--webhook-url",
    help="POST signed livestreaming.statusUpdate webhooks here (http:// on loopback only).",
)
@handle_errors
def fake_api(
    host: str, port: int, token: str, live_after: float | None, webhook_url: str | None
) -> None:
    """Serve the fake RealtimeKit API on loopback; prints its base URL, stops on Ctrl-C.

    Point CLOUDFLARE_BASE_URL at the printed URL. Faults and lifecycles are scripted over
    HTTP: POST /__fake__/faults, GET /__fake__/stats, POST /__fake__/reset, POST
    /__fake__/end, POST /__fake__/foreign. The webhook key is at /.well-known/webhooks.json.
    """
    from worker.dev.fake_realtimekit import loopback_host, run_fake_api
    from worker.dev.fake_webhooks import loopback_url

    # Checked before serving, so each bad option is named, and nothing listens meanwhile.
    try:
        loopback_host(host)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--host") from None
    try:
        if webhook_url is not None:
            loopback_url(webhook_url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--webhook-url") from None
    run_fake_api(host, port, token, live_after, webhook_url=webhook_url)


@cli.command()
@json_option
def keygen(as_json: bool) -> None:
    """Print a new key for LIVESTREAMS_SECRET_KEY (put the newest first when rotating)."""
    key = new_key()
    emit(as_json, {"key": key}, key)


cli.add_command(api_key)
cli.add_command(serve)
cli.add_command(webhooks)
cli.add_command(series)
cli.add_command(capacity)


def main() -> None:
    _log_format()
    cli(prog_name="livestreams")


def _log_format() -> None:
    """LIVESTREAMS_LOG_FORMAT=json: what the CLI logs (warnings and worse, on stderr) is one
    JSON object per line. A bad value is left to the command's own settings check (exit 2)."""
    try:
        wanted = log_format_from_env()
    except SettingsError:
        return
    if wanted == logformat.JSON:
        handler = logging.StreamHandler(sys.stderr)
        logformat.use_json([handler])
        logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())  # type: ignore[func-returns-value]
