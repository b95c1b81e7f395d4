"""Webhook endpoints, deliveries and attempts as ops see them: dicts (--json, HTTP) and text.

Never a secret: an endpoint shows whether a previous secret still signs, not what it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def endpoint_dict(endpoint: WebhookEndpoint, now: datetime) -> dict[str, Any]:
    rotating = (
        endpoint.previous_secret_expires_at is not None
        and endpoint.previous_secret_expires_at > now
    )
    return {
        "id": str(endpoint.id),
        "url": endpoint.url,
        "event_types": endpoint.event_types.split(),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": _iso(endpoint.created_at),
        "last_success_at": _iso(endpoint.last_success_at),
        "failures_in_a_row": endpoint.failures_in_a_row,
        "failing_since": _iso(endpoint.failing_since),
        "previous_secret_valid_until": (
            _iso(endpoint.previous_secret_expires_at) if rotating else None
        ),
    }


def render_endpoint(data: dict[str, Any]) -> str:
    state = "enabled" if data["enabled"] else f"DISABLED ({data['disabled_reason']})"
    health = f"last success {data['last_success_at'] or 'never'}"
    if data["failures_in_a_row"]:
        health += f", {data['failures_in_a_row']} failures in a row since {data['failing_since']}"
    return (
        f"{data['id']}  {data['url']}  {state}\n"
        f"  events: {' '.join(data['event_types'])}\n  {health}"
    )


def attempt_dict(attempt: WebhookAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "sent_at": _iso(attempt.sent_at),
        "finished_at": _iso(attempt.finished_at),
        "status": attempt.status,
        "duration": None if attempt.duration is None else round(attempt.duration, 4),
        "response_excerpt": attempt.response_excerpt,
        "error": attempt.error,
    }


def delivery_dict(
    delivery: WebhookDelivery, event_type: str, attempts: list[WebhookAttempt] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(delivery.id),
        "event_id": str(delivery.event_id),
        "event_type": event_type,
        "endpoint_id": str(delivery.endpoint_id),
        "state": delivery.state,
        "attempts": delivery.attempts,
        "due_at": _iso(delivery.due_at),
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "created_at": _iso(delivery.created_at),
        "delivered_at": _iso(delivery.delivered_at),
    }
    if attempts is not None:
        data["attempt_log"] = [attempt_dict(a) for a in attempts]
    return data


def render_delivery(data: dict[str, Any]) -> str:
    last = data["last_status"] if data["last_status"] is not None else data["last_error"] or "-"
    line = (
        f"{data['id']}  {data['event_type']:<18} {data['state']:<9} "
        f"attempts={data['attempts']} last={last}  event {data['event_id']}"
    )
    for a in data.get("attempt_log", []):
        answer = a["status"] if a["status"] is not None else a["error"] or "no answer (died)"
        line += f"\n    #{a['number']} {a['sent_at']} -> {answer} ({a['duration']} s)"
    return line
