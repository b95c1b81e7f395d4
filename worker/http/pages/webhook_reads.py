"""What the ops page's webhook views read: each endpoint's health and its deliveries not yet
sent, a page of an endpoint's deliveries with their bookings and attempts, and the lines the
overview shows for failing and disabled endpoints.

Never a secret: an endpoint reaches a template through webhook_present.endpoint_dict only.
Delivery states are shown as stored, so a state added later shows without a change here.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from models import (
    WAITING_STATES,
    ScheduledStream,
    Series,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from worker.notify.endpoints import EVENT_TYPES, FAILING_ALERT
from worker.notify.present import delivery_dict, endpoint_dict

D = WebhookDelivery
E = WebhookEndpoint
# Every state a delivery can wait in, an IN list on the leading column of
# ix_webhook_deliveries_state_due_at: delivered rows, however many, are never read.
WAITING = WAITING_STATES
OVERVIEW_LINES = 5  # per kind (failing, disabled); the rest are on /ops/webhooks


def ago(now: datetime, then: datetime | None) -> str | None:
    """How long before ``now`` ``then`` was, to the unit that reads best: "42 s ago"."""
    if then is None:
        return None
    seconds = (now - then).total_seconds()
    if seconds < 0:
        return "in the future"
    for unit, size, below in (("s", 1, 120), ("min", 60, 120 * 60), ("h", 3600, 48 * 3600)):
        if seconds < below:
            return f"{seconds // size:.0f} {unit} ago"
    return f"{seconds // 86400:.0f} d ago"


def _to_seconds(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    """``data`` with the instants at ``keys`` to the second, as the rest of the page shows
    them ("2027-05-01T17:00:03Z"; webhook_present keeps the microseconds for --json)."""
    return {**data, **{k: data[k][:19] + "Z" for k in keys if data[k]}}


def href(endpoint_id: uuid.UUID | str) -> str:
    return f"/ops/webhooks/{endpoint_id}"


def failing_long(endpoint: WebhookEndpoint, now: datetime) -> bool:
    """endpoints.failing's test for one endpoint: enabled, and failing for over FAILING_ALERT."""
    return (
        endpoint.enabled
        and endpoint.failing_since is not None
        and endpoint.failing_since < now - FAILING_ALERT
    )


def waiting(
    session: Session, endpoint_ids: Sequence[uuid.UUID] | None = None
) -> dict[uuid.UUID, dict[str, int]]:
    """Deliveries not yet delivered or failed, per endpoint and state, in one grouped query."""
    query = select(D.endpoint_id, D.state, func.count()).where(D.state.in_(WAITING))
    if endpoint_ids is not None:
        query = query.where(D.endpoint_id.in_(endpoint_ids))
    out: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    for endpoint_id, state, count in session.execute(query.group_by(D.endpoint_id, D.state)):
        out[endpoint_id][state] = count
    return out


def endpoint_row(
    endpoint: WebhookEndpoint, now: datetime, waiting_by_state: dict[str, int]
) -> dict[str, Any]:
    """An endpoint as the page shows it: endpoint_dict, its ages, its marks, what waits."""
    data = endpoint_dict(endpoint, now)
    times = ("created_at", "last_success_at", "failing_since", "previous_secret_valid_until")
    every = set(data["event_types"]) == set(EVENT_TYPES)
    return {
        **_to_seconds(data, *times),
        "events_text": "every event type" if every else ", ".join(data["event_types"]),
        "href": href(endpoint.id),
        "last_success_ago": ago(now, endpoint.last_success_at),
        "failing_since_ago": ago(now, endpoint.failing_since),
        "failing_long": failing_long(endpoint, now),
        "waiting": sorted(waiting_by_state.items()),
    }


def endpoint_rows(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Every endpoint, oldest first (endpoints are few: a platform's handful)."""
    found = list(session.scalars(select(E).order_by(E.created_at, E.id)))
    counts = waiting(session)
    return [endpoint_row(e, now, counts.get(e.id, {})) for e in found]


def overview_lines(
    session: Session, now: datetime, failing: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One line per endpoint failing over an hour (``failing``: the health check's, already
    read) and per disabled endpoint, each linking to it; at most OVERVIEW_LINES of each."""
    lines = []
    for f in failing[:OVERVIEW_LINES]:
        since = datetime.fromisoformat(f["failing_since"])
        what = (
            f"failing since {since.replace(microsecond=0).isoformat().replace('+00:00', 'Z')} "
            f"({ago(now, since)}; {f['failures_in_a_row']} failures in a row)"
        )
        lines.append({"href": href(f["id"]), "url": f["url"], "what": what})
    disabled = session.execute(
        select(E.id, E.url, E.disabled_reason)
        .where(E.enabled.is_(False))
        .order_by(E.updated_at.desc(), E.id)
        .limit(OVERVIEW_LINES)
    )
    lines += [
        {"href": href(ident), "url": url, "what": f"disabled: {reason or 'no reason given'}"}
        for ident, url, reason in disabled
    ]
    return lines


def delivery_rows(
    session: Session,
    endpoint_id: uuid.UUID,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """A page of the endpoint's deliveries, newest first (keyset on (created_at, id), read on
    ix_webhook_deliveries_endpoint_id_created_at), each with its event's type, its booking
    and every attempt made; ``before``: only those older than that (created_at, id)."""
    S = ScheduledStream
    # A series event names its series, not a booking.
    query = (
        select(D, WebhookEvent.type, S.id, S.external_ref, S.name, Series.id, Series.ref)
        .join(WebhookEvent, WebhookEvent.id == D.event_id)
        .outerjoin(S, S.id == WebhookEvent.stream_id)
        .outerjoin(Series, Series.id == WebhookEvent.series_id)
        .where(D.endpoint_id == endpoint_id)
    )
    if before is not None:
        at, last_id = before
        query = query.where(or_(D.created_at < at, and_(D.created_at == at, D.id < last_id)))
    found = session.execute(query.order_by(D.created_at.desc(), D.id.desc()).limit(limit)).all()
    tried = _attempts(session, [row[0].id for row in found])
    return [
        {
            **_delivery(delivery_dict(delivery, type_, tried.get(delivery.id, []))),
            "booking_href": f"/ops/bookings/{stream_id}"
            if stream_id
            else f"/ops/series/{series_id}",
            "booking": ref or name or (str(stream_id)[:8] if stream_id else f"series {series_ref}"),
            "replay_href": f"{href(endpoint_id)}/deliveries/{delivery.id}/replay",
            "cursor_key": (delivery.created_at, delivery.id),
        }
        for delivery, type_, stream_id, ref, name, series_id, series_ref in found
    ]


def _delivery(data: dict[str, Any]) -> dict[str, Any]:
    attempts = [_to_seconds(a, "sent_at", "finished_at") for a in data["attempt_log"]]
    return {**_to_seconds(data, "due_at", "created_at", "delivered_at"), "attempt_log": attempts}


def _attempts(
    session: Session, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    """Every attempt of each delivery, in order: one query for the whole page."""
    out: dict[uuid.UUID, list[WebhookAttempt]] = defaultdict(list)
    if delivery_ids:
        query = (
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(delivery_ids))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number, WebhookAttempt.id)
        )
        for attempt in session.scalars(query):
            out[attempt.delivery_id].append(attempt)
    return out
