"""The conditional statements of a webhook delivery: claim, confirm, finish; endpoint health.

A delivery is claimed like a start (worker.lease.claims): one UPDATE sets a fresh claim token and a
lease on due ``pending`` rows, with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so concurrent
ticks take disjoint rows. The run confirms the claim (a new token: a message delivered twice
confirms once) in the transaction that writes its attempt ahead of the POST, and finishes it
under that token. A run that vanished (killed worker, lost message, flushed broker) leaves
the row ``pending`` with a lease that runs out: the next tick after that claims it again, so
every event is delivered at least once.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from models import (
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from worker.lease.claims import Claim

D = WebhookDelivery
E = WebhookEndpoint
WEBHOOK = "webhook"  # Claim.kind: run by livestreams.deliver_webhook
PENDING = DeliveryState.PENDING.value
HELD = DeliveryState.HELD.value

# The run still holds the delivery: pending, under its token.
DELIVERY_HELD = and_(
    D.id == bindparam("p_id"),
    D.state == PENDING,
    D.claim_token == bindparam("p_token"),
)


def claim(session: Session, now: datetime, *, lease: float, batch: int) -> list[Claim]:
    """CLAIM_DELIVERIES: up to ``batch`` pending deliveries due by ``now``, oldest first,
    not held by a live run, to an enabled endpoint. Their lease runs ``lease`` seconds.

    At most ``batch`` are held at once, counting those claimed before and not finished: a
    backlog (an endpoint back after a day) waits in the database, in order, rather than in a
    broker queue so long that leases run out in it and the same messages are queued again.
    """
    held = session.scalar(
        select(func.count()).where(
            D.state == PENDING,
            D.due_at <= now,
            D.claim_token.is_not(None),
            D.lease_expires_at >= now,
        )
    )
    batch -= held or 0
    if batch <= 0:
        return []
    token = uuid.uuid4()
    enabled = exists().where(E.id == D.endpoint_id, E.enabled.is_(True))
    pick = (
        select(D.id)
        .where(
            D.state == PENDING,
            D.due_at <= now,
            or_(D.claim_token.is_(None), D.lease_expires_at < now),
            enabled,
        )
        .order_by(D.due_at)
        .limit(batch)
    )
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    stmt = (
        update(D)
        .where(D.id.in_(pick.scalar_subquery()))
        .values(
            claim_token=token,
            lease_expires_at=now + timedelta(seconds=lease),
            updated_at=now,
        )
        .returning(D.id, D.due_at)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(stmt).all()
    return [Claim(r[0], token, now, kind=WEBHOOK) for r in sorted(rows, key=lambda r: r[1])]


_CONFIRM = (
    update(D)
    .where(DELIVERY_HELD)
    .values(
        attempts=D.attempts + 1,
        claim_token=bindparam("renewed"),
        lease_expires_at=bindparam("lease_until"),
        updated_at=bindparam("now"),
    )
    .returning(D.attempts, D.event_id, D.endpoint_id)
)


def confirm(
    session: Session, delivery_id: uuid.UUID, token: uuid.UUID, now: datetime, lease: float
) -> tuple[uuid.UUID, Any] | None:
    """CONFIRM_DELIVERY: take the claim for one POST, and write its attempt row ahead of it.

    Returns the token that now holds it and (attempts, event_id, endpoint_id); None if the
    claim is gone (another run has it, or it was finished)."""
    renewed = uuid.uuid4()
    params = {
        "p_id": delivery_id,
        "p_token": token,
        "renewed": renewed,
        "now": now,
        "lease_until": now + timedelta(seconds=lease),
    }
    row = session.connection().execute(_CONFIRM, params).one_or_none()
    if row is None:
        return None
    session.execute(
        insert(WebhookAttempt).values(delivery_id=delivery_id, number=row.attempts, sent_at=now)
    )
    return renewed, row


def load(session: Session, delivery_id: uuid.UUID) -> Any:
    """What the POST needs: the event's body and type, the endpoint's URL and secrets."""
    return session.execute(
        select(
            WebhookEvent.payload, WebhookEvent.type, E.url, E.enabled, E.secret_ciphertext,
            E.previous_secret_ciphertext, E.previous_secret_expires_at,
        )
        .select_from(D)
        .join(WebhookEvent, WebhookEvent.id == D.event_id)
        .join(E, E.id == D.endpoint_id)
        .where(D.id == delivery_id)
    ).one()  # fmt: skip


def finish_attempt(
    session: Session,
    delivery_id: uuid.UUID,
    number: int,
    now: datetime,
    *,
    status: int | None,
    duration: float,
    excerpt: str | None,
    error: str | None,
) -> None:
    """Close the attempt written ahead: what came back, how long it took."""
    session.execute(
        update(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id, WebhookAttempt.number == number)
        .values(
            finished_at=now,
            status=status,
            duration=duration,
            response_excerpt=excerpt,
            error=error,
        )
    )


def finish(
    session: Session,
    delivery_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    *,
    state: DeliveryState,
    status: int | None,
    error: str | None,
    due_at: datetime | None = None,
) -> bool:
    """FINISH_DELIVERY: release the claim, as ``state`` (pending again at ``due_at`` for a
    retry). True if this run still held it."""
    values: dict[str, Any] = {
        "state": state.value,
        "claim_token": None,
        "lease_expires_at": None,
        "last_status": status,
        "last_error": error,
        "updated_at": now,
    }
    if due_at is not None:
        values["due_at"] = due_at
    if state is DeliveryState.DELIVERED:
        values["delivered_at"] = now
    stmt = update(D).where(DELIVERY_HELD).values(**values)
    result = session.execute(
        stmt.execution_options(synchronize_session=False), {"p_id": delivery_id, "p_token": token}
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def park(session: Session, endpoint_id: uuid.UUID, now: datetime) -> int:
    """PARK_DELIVERIES: the endpoint is disabled; its pending deliveries are held, out of the
    claim's sight, keeping their due instants. A run that holds one loses its claim (its
    POST, if already sent, is sent again once the endpoint is back: at least once)."""
    stmt = (
        update(D)
        .where(D.endpoint_id == endpoint_id, D.state == PENDING)
        .values(state=HELD, claim_token=None, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def unpark(session: Session, endpoint_id: uuid.UUID, now: datetime) -> int:
    """UNPARK_DELIVERIES: the endpoint is enabled; its held deliveries are pending again, due
    as they were, so the oldest go out first."""
    stmt = (
        update(D)
        .where(D.endpoint_id == endpoint_id, D.state == HELD)
        .values(state=PENDING, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def endpoint_succeeded(session: Session, endpoint_id: uuid.UUID, now: datetime) -> None:
    """ENDPOINT_OK: healthy again."""
    session.execute(
        update(E)
        .where(E.id == endpoint_id)
        .values(last_success_at=now, failures_in_a_row=0, failing_since=None)
    )


def endpoint_failed(
    session: Session, endpoint_id: uuid.UUID, now: datetime, *, disable: str | None = None
) -> None:
    """ENDPOINT_FAILED: one more failure in a row (failing since the first of them); with
    ``disable``, switched off for that reason."""
    values: dict[str, Any] = {
        "failures_in_a_row": E.failures_in_a_row + 1,
        "failing_since": func.coalesce(E.failing_since, now),
    }
    if disable is not None:
        values.update(enabled=False, disabled_reason=disable, updated_at=now)
    session.execute(update(E).where(E.id == endpoint_id).values(**values))
    if disable is not None:
        park(session, endpoint_id, now)
