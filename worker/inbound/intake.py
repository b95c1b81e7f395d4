"""A provider webhook whose signature held, taken in once: its row, and what it did.

Everything happens in the caller's transaction, so a crash can neither apply a delivery
without recording it nor record it without applying it:
- ``CLAIM_DELIVERY``: the delivery's ``provider_webhooks`` row goes in unless its id is
  there already (``INSERT ... ON CONFLICT DO NOTHING``). A replay finds it and changes
  nothing; two replicas given the same delivery at once race on the primary key, and
  PostgreSQL makes the second insert wait for the first's commit, then do nothing.
- a statusUpdate for a livestream of ours goes to ``observe.apply`` (the one place a status
  lands: a late delivery never moves the row back);
- ``RECORD_STALE``: the row says ``stale`` when observe.apply found it older than what is
  stored.
The row never holds the payload: it carries the stream key in the clear.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models import ProviderWebhook, StatusSource
from models.db import db_now
from worker.bookings import observe
from worker.inbound.signature import Delivery

W = ProviderWebhook


class IntakeResult(enum.StrEnum):
    """What a delivery did; all but ``duplicate`` are stored in its row."""

    APPLIED = "applied"  # the newest word on a livestream of ours: stored on its booking
    STALE = "stale"  # older than the status stored (timeline only), or that status again (no-op)
    UNKNOWN_STREAM = "unknown_stream"  # no booking of ours has this livestream id
    IGNORED = "ignored"  # an event other than livestreaming.statusUpdate
    DUPLICATE = "duplicate"  # its delivery id was taken in before: nothing changed


@dataclass(frozen=True)
class Receipt:
    result: IntakeResult
    stream_id: uuid.UUID | None = None  # the booking it applied to


def expected(delivery: Delivery, stream_id: uuid.UUID | None) -> IntakeResult:
    """What a first delivery comes to, before observe.apply may find it stale."""
    if not delivery.is_status_update:
        return IntakeResult.IGNORED
    return IntakeResult.UNKNOWN_STREAM if stream_id is None else IntakeResult.APPLIED


def _fit(value: str | None, column: object) -> str | None:
    """``value`` cut to ``column``'s width: the provider's text is stored, never refused."""
    length: int | None = getattr(getattr(column, "type", None), "length", None)
    return value if value is None or length is None else value[:length]


def receive(
    session: Session, delivery_id: str, delivery: Delivery, body_sha256: str | None = None
) -> Receipt:
    """Take ``delivery`` in under ``delivery_id``, in the caller's transaction; a delivery
    whose id or signed body (``body_sha256``) was taken in before is a duplicate."""
    now = db_now(session)
    stream_id = None
    if delivery.is_status_update and delivery.livestream_id is not None:
        stream_id = observe.find_booking(session, delivery.livestream_id)
    result = expected(delivery, stream_id)
    status = _fit(delivery.status, W.status)
    if not _claim(session, delivery_id, body_sha256, delivery, status, stream_id, result, now):
        return Receipt(IntakeResult.DUPLICATE)
    if stream_id is None:
        return Receipt(result)
    assert delivery.livestream_id is not None and status is not None  # a statusUpdate's
    seen = observe.Observation(
        livestream_id=delivery.livestream_id,
        status=status,
        observed_at=delivery.updated_at or now,
        source=StatusSource.WEBHOOK,
    )
    if observe.apply(session, stream_id, seen, now) is not observe.Applied.APPLIED:
        result = IntakeResult.STALE
        session.execute(
            update(W)  # RECORD_STALE
            .where(W.delivery_id == delivery_id)
            .values(result=result.value)
            .execution_options(synchronize_session=False)
        )
    return Receipt(result, stream_id)


def _claim(
    session: Session,
    delivery_id: str,
    body_sha256: str | None,
    delivery: Delivery,
    status: str | None,
    stream_id: uuid.UUID | None,
    result: IntakeResult,
    now: datetime,
) -> bool:
    """CLAIM_DELIVERY: True if this delivery id and this body are new (its row is now in the
    transaction). The rtk-uuid header is not signed: a captured delivery replayed under fresh
    ids conflicts on its body's digest instead."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(W)
        .values(
            delivery_id=delivery_id,
            event=_fit(delivery.event, W.event),
            received_at=now,
            livestream_id=_fit(delivery.livestream_id, W.livestream_id),
            status=status,
            stream_id=stream_id,
            result=result.value,
            body_sha256=body_sha256,
        )
        .on_conflict_do_nothing()  # on the id or on the body's digest
        # RETURNING, not rowcount: the ORM's insert path does not report one (-1).
        .returning(W.delivery_id)
    )
    return session.execute(stmt).first() is not None


def counts_since(session: Session, since: datetime) -> dict[str, int]:
    """Deliveries received since ``since`` by result, every stored result named (a range of
    the received_at index)."""
    counts = {r.value: 0 for r in IntakeResult if r is not IntakeResult.DUPLICATE}
    query = select(W.result, func.count()).where(W.received_at >= since).group_by(W.result)
    for result, count in session.execute(query):
        counts[result] = count
    return counts


def last_received_at(session: Session) -> datetime | None:
    """When the latest delivery came (the end of the received_at index)."""
    return session.scalar(select(func.max(W.received_at)))
