"""`livestreams webhooks ...`: the platform's endpoints, their deliveries, and replay.

A thin click layer over worker.notify.endpoints. The secret is printed once, by ``add`` and
``rotate-secret``; nothing else ever shows it.
"""

from __future__ import annotations

from datetime import timedelta

import click

from models.db import db_now
from worker.cli.tools import current_settings, emit, handle_errors, json_option, session_scope
from worker.crypto import cipher_for
from worker.notify import endpoints
from worker.notify.present import delivery_dict, endpoint_dict, render_delivery, render_endpoint

SHOWN_ONCE = "(webhook signing secret: store it now, it is not shown again)"


@click.group("webhooks")
def webhooks() -> None:
    """Outbound webhooks: endpoints of the platform, signed per Standard Webhooks."""


@webhooks.command("add")
@click.option("--url", required=True, help="http(s) URL; loopback and private addresses are "
              "refused unless LIVESTREAMS_WEBHOOKS_ALLOW_PRIVATE=1.")  # fmt: skip
@click.option(
    "--event",
    "events",
    multiple=True,
    default=("*",),
    show_default=True,
    help=f"Repeatable or comma-separated: {', '.join(endpoints.EVENT_TYPES)}, or * for all.",
)
@json_option
@handle_errors
def add(url: str, events: tuple[str, ...], as_json: bool) -> None:
    """Register an endpoint and print its secret: shown this once."""
    settings = current_settings()
    with session_scope(settings) as session:
        created = endpoints.add(
            session, settings, cipher_for(settings, create=True), url=url, event_types=events
        )
        data = endpoint_dict(created.endpoint, db_now(session))
    secret = created.secret.get()
    emit(as_json, {**data, "secret": secret}, f"{secret}\n{SHOWN_ONCE}\n{render_endpoint(data)}")


@webhooks.command("list")
@json_option
@handle_errors
def list_command(as_json: bool) -> None:
    """Every endpoint with its health (last success, failures in a row)."""
    settings = current_settings()
    with session_scope(settings) as session:
        now = db_now(session)
        rows = [endpoint_dict(e, now) for e in endpoints.list_endpoints(session)]
    emit(as_json, rows, "\n".join(render_endpoint(r) for r in rows) or "no webhook endpoints")


@webhooks.command("disable")
@click.argument("endpoint_id")
@click.option("--reason", help="Shown with the endpoint.")
@json_option
@handle_errors
def disable(endpoint_id: str, reason: str | None, as_json: bool) -> None:
    """Stop sending to an endpoint; its deliveries wait until it is enabled again."""
    _set(endpoint_id, False, reason, as_json)


@webhooks.command("enable")
@click.argument("endpoint_id")
@json_option
@handle_errors
def enable(endpoint_id: str, as_json: bool) -> None:
    """Send to an endpoint again (after a 410, or `disable`), waiting deliveries first."""
    _set(endpoint_id, True, None, as_json)


def _set(endpoint_id: str, enabled: bool, reason: str | None, as_json: bool) -> None:
    settings = current_settings()
    with session_scope(settings) as session:
        endpoint = endpoints.set_enabled(session, endpoint_id, enabled, reason)
        data = endpoint_dict(endpoint, db_now(session))
    emit(as_json, data, render_endpoint(data))


@webhooks.command("rotate-secret")
@click.argument("endpoint_id")
@click.option("--grace-hours", type=click.FloatRange(0, 24 * 30), default=24.0,
              show_default=True, help="How long the old secret keeps signing too.")  # fmt: skip
@json_option
@handle_errors
def rotate_secret(endpoint_id: str, grace_hours: float, as_json: bool) -> None:
    """Make a new secret and print it (once); both sign until the grace period ends."""
    settings = current_settings()
    with session_scope(settings) as session:
        created = endpoints.rotate_secret(
            session, cipher_for(settings), endpoint_id, timedelta(hours=grace_hours)
        )
        data = endpoint_dict(created.endpoint, db_now(session))
    secret = created.secret.get()
    emit(as_json, {**data, "secret": secret}, f"{secret}\n{SHOWN_ONCE}\n{render_endpoint(data)}")


@webhooks.command("deliveries")
@click.argument("endpoint_id")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@json_option
@handle_errors
def deliveries_command(endpoint_id: str, limit: int, as_json: bool) -> None:
    """An endpoint's newest deliveries, each with its attempts (status, duration, answer)."""
    settings = current_settings()
    with session_scope(settings) as session:
        rows = endpoints.deliveries(session, endpoint_id, limit=limit)
        types = endpoints.event_types(session, [r.event_id for r in rows])
        data = [
            delivery_dict(r, types[r.event_id], endpoints.attempts(session, r.id)) for r in rows
        ]
    emit(as_json, data, "\n".join(render_delivery(d) for d in data) or "no deliveries")


@webhooks.command("replay")
@click.argument("delivery_id")
@json_option
@handle_errors
def replay(delivery_id: str, as_json: bool) -> None:
    """Send a delivery's event again (same webhook-id, same body), due now."""
    settings = current_settings()
    with session_scope(settings) as session:
        row = endpoints.replay(session, delivery_id)
        data = delivery_dict(row, endpoints.event_types(session, [row.event_id])[row.event_id])
    emit(as_json, data, f"replaying as {data['id']}\n{render_delivery(data)}")
