"""The outbox: an event row, and its deliveries, in the transaction of the state change.

The callers (worker.bookings.transitions, worker.follow.claims, worker.bookings.observe,
worker.bookings.booking, worker.lease.claims) call :func:`emit` right after their conditional UPDATE
changed the row, in the same transaction: the event exists exactly when the change does, whatever
happens to the process or the broker afterwards. The payload is built from the row as it now stands
and never carries the stream key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from models import (
    DeliveryState,
    EventType,
    ScheduledStream,
    Series,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

S = ScheduledStream

# What the platform is told about the booking: never the stream key or the ingest server.
_COLUMNS = (
    S.id,
    S.external_ref,
    S.meeting_id,
    S.state,
    S.livestream_id,
    S.playback_url,
    S.last_error,
    S.end_reason,
    S.problem,
)


def payload(event_id: uuid.UUID, type_: EventType, now: datetime, row: Any) -> dict[str, Any]:
    """The body of an event, in the shape Standard Webhooks suggests: type, timestamp, data."""
    reason = row.end_reason if type_ is EventType.STREAM_ENDED else row.last_error
    if type_ is EventType.STREAM_ERRORED:
        reason = "the provider reported ERRORED"
    return {
        "id": str(event_id),
        "type": type_.value,
        "timestamp": now.isoformat(),
        "data": {
            "booking_id": str(row.id),
            "ref": row.external_ref,
            "meeting_id": str(row.meeting_id),
            "state": row.state,
            "livestream_id": row.livestream_id,
            "playback_url": row.playback_url,
            "reason": reason,
        },
    }


def emit(session: Session, type_: EventType, stream_id: uuid.UUID, now: datetime) -> None:
    """Write one ``type_`` event for booking ``stream_id``, in the caller's transaction."""
    emit_many(session, type_, [stream_id], now)


def emit_many(
    session: Session, type_: EventType, stream_ids: Iterable[uuid.UUID], now: datetime
) -> None:
    """One event per booking (the set-based UPDATEs: expire, fail reclaimed), and one
    delivery per enabled endpoint that wants the type; nothing if no endpoint does."""
    ids = list(stream_ids)
    if not ids:
        return
    endpoints = _wanting(session, type_)
    if not endpoints:
        return
    rows = session.execute(select(*_COLUMNS).where(S.id.in_(ids))).all()
    events = []
    for row in rows:
        event_id = uuid.uuid4()
        body = payload(event_id, type_, now, row)
        events.append(
            {
                "id": event_id,
                "type": type_.value,
                "stream_id": row.id,
                "payload": json.dumps(body, separators=(",", ":")),
                "created_at": now,
            }
        )
    if not events:
        return
    session.execute(insert(WebhookEvent), events)
    session.execute(
        insert(WebhookDelivery),
        [delivery(event["id"], endpoint_id, now) for event in events for endpoint_id in endpoints],
    )


def emit_series(session: Session, type_: EventType, series: Series, now: datetime) -> None:
    """Write one ``type_`` event for ``series`` (as it now stands), in the caller's
    transaction; nothing if no endpoint wants the type."""
    endpoints = _wanting(session, type_)
    if not endpoints:
        return
    event_id = uuid.uuid4()
    body = {
        "id": str(event_id),
        "type": type_.value,
        "timestamp": now.isoformat(),
        "data": {
            "series_id": str(series.id),
            "ref": series.ref,
            "meeting_id": str(series.meeting_id),
            "state": series.state,
            "rule": series.rule,
            "wall_time": series.wall_time,
            "timezone": series.timezone,
            "duration_seconds": series.duration,
        },
    }
    session.execute(
        insert(WebhookEvent),
        [
            {
                "id": event_id,
                "type": type_.value,
                "series_id": series.id,
                "payload": json.dumps(body, separators=(",", ":")),
                "created_at": now,
            }
        ],
    )
    session.execute(
        insert(WebhookDelivery), [delivery(event_id, endpoint_id, now) for endpoint_id in endpoints]
    )


def _wanting(session: Session, type_: EventType) -> list[uuid.UUID]:
    """The enabled endpoints that want ``type_``. Endpoints are few: read first, so that a
    change nobody asked to hear of costs one small query and writes nothing."""
    return [
        endpoint_id
        for endpoint_id, wanted in session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
                WebhookEndpoint.enabled.is_(True)
            )
        )
        if type_.value in wanted.split()
    ]


def delivery(event_id: uuid.UUID, endpoint_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    """A new delivery row, due now."""
    return {
        "id": uuid.uuid4(),
        "event_id": event_id,
        "endpoint_id": endpoint_id,
        "state": DeliveryState.PENDING.value,
        "attempts": 0,
        "due_at": now,
        "created_at": now,
        "updated_at": now,
    }


def after(
    written: bool, session: Session, type_: EventType, stream_id: uuid.UUID, now: datetime
) -> bool:
    """:func:`emit` if the caller's conditional UPDATE ``written`` the change; ``written``."""
    if written:
        emit(session, type_, stream_id, now)
    return written
