"""The conditional statements of a webhook delivery: claim, take back, confirm, finish;
endpoint health.

A delivery is leased like a start, by the one claim machinery (worker.lease.claims): one UPDATE
sets a fresh claim token and a lease on due ``pending`` rows (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so concurrent ticks take disjoint rows). The run confirms the claim (a new token:
a message delivered twice confirms once, and this process's heartbeat as its owner) in the
transaction that writes its attempt ahead of the POST, and finishes it under that token. A run
that vanished leaves the row ``pending``: a claim no run took up within the pickup grace (a lost
message, a flushed broker) is sent again, one whose owner stopped beating (a killed worker) is
taken back within seconds, and one whose lease ran out is claimed again, so every event is
delivered at least once, and soon.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from models import (
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from worker.lease import claims as leasing
from worker.lease.claims import RELEASED, Claim, ClaimKind

D = WebhookDelivery
E = WebhookEndpoint
WEBHOOK = ClaimKind.WEBHOOK
PENDING = DeliveryState.PENDING.value
HELD = DeliveryState.HELD.value
_PENDING = D.state == PENDING

# The run still holds the delivery: pending, under its token.
DELIVERY_HELD = leasing.held(D, _PENDING)


def held(session: Session, now: datetime) -> int:
    """Deliveries due and held by a run, or handed out to one, and not finished."""
    query = select(func.count()).where(
        _PENDING, D.due_at <= now, D.claim_token.is_not(None), D.lease_expires_at >= now
    )
    return session.scalar(query) or 0


def claim(session: Session, now: datetime, *, lease: float, batch: int) -> list[Claim]:
    """CLAIM_DELIVERIES: up to ``batch`` pending deliveries due by ``now``, oldest first,
    not held by a live run, to an enabled endpoint. Their lease runs ``lease`` seconds.

    The tick asks for at most what the claim batch leaves beside those :func:`held`
    (worker.dispatch.share): a backlog (an endpoint back after a day) waits in the database, in
    order, rather than in a broker queue so long that leases run out in it.
    """
    enabled = exists().where(E.id == D.endpoint_id, E.enabled.is_(True))
    claimed = leasing.take(
        session,
        D,
        WEBHOOK,
        [
            _PENDING,
            D.due_at <= now,
            or_(D.claim_token.is_(None), D.lease_expires_at < now),
            enabled,
        ],
        batch,
        lease_expires_at=now + timedelta(seconds=lease),
        claim_owner=None,
        claimed_at=now,
        updated_at=now,
    )
    return [replace(c, due_at=now) for c in claimed]


def reap(
    session: Session,
    now: datetime,
    *,
    lease: float,
    batch: int,
    pickup_grace: float,
    owner_timeout: float | None,
) -> list[Claim]:
    """Hand out again the deliveries no run took up within ``pickup_grace`` (a lost message:
    same token, less and less often), and take back those whose owner stopped beating (a
    killed worker) before their lease ran out. (At the lease's end ``claim`` takes them.)"""
    held = [_PENDING, D.lease_expires_at >= now]
    again = leasing.resend(
        session, D, WEBHOOK, now, held, lease=lease, batch=batch, pickup_grace=pickup_grace
    )
    if owner_timeout is None:
        return [replace(c, due_at=now) for c in again]
    taken = leasing.take(
        session,
        D,
        WEBHOOK,
        [
            *held,
            D.due_at <= now,
            D.claim_token.is_not(None),
            leasing.owner_died(D, now, owner_timeout),
        ],
        batch - len(again),
        lease_expires_at=now + timedelta(seconds=lease),
        claim_owner=None,
        claimed_at=now,
        updated_at=now,
    )
    return [replace(c, due_at=now) for c in [*again, *taken]]


def unconfirmed(session: Session, now: datetime) -> int:
    """Deliveries handed out that no run has confirmed yet: their messages wait in the broker."""
    return leasing.unconfirmed(session, D, _PENDING, now)


_CONFIRM = leasing.confirm_statement(
    D, DELIVERY_HELD, returning=[D.attempts, D.event_id, D.endpoint_id]
)


def confirm(
    session: Session,
    delivery_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    *,
    lease: float,
    owner: uuid.UUID,
) -> tuple[uuid.UUID, Any] | None:
    """CONFIRM_DELIVERY: take the claim for one POST, owned by this process's heartbeat
    ``owner``, and write its attempt row ahead of it.

    Returns the token that now holds it and (attempts, event_id, endpoint_id); None if the
    claim is gone (another run has it, or it was finished)."""
    confirmed = leasing.confirm_with(session, _CONFIRM, delivery_id, token, now, lease, owner)
    if confirmed is None:
        return None
    renewed, row = confirmed
    session.execute(
        insert(WebhookAttempt).values(delivery_id=delivery_id, number=row.attempts, sent_at=now)
    )
    return renewed, row


def load(session: Session, delivery_id: uuid.UUID) -> Any:
    """What the POST needs: the event's body and type, the endpoint's URL and secrets."""
    return session.execute(
        select(
            WebhookEvent.payload,
            WebhookEvent.type,
            E.url,
            E.enabled,
            E.secret_ciphertext,
            E.previous_secret_ciphertext,
            E.previous_secret_expires_at,
        )
        .select_from(D)
        .join(WebhookEvent, WebhookEvent.id == D.event_id)
        .join(E, E.id == D.endpoint_id)
        .where(D.id == delivery_id)
    ).one()


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
        **RELEASED,
        "last_status": status,
        "last_error": error,
        "updated_at": now,
    }
    if due_at is not None:
        values["due_at"] = due_at
    if state is DeliveryState.DELIVERED:
        values["delivered_at"] = now
    return leasing.while_held(session, D, DELIVERY_HELD, delivery_id, token, **values)


def park(session: Session, endpoint_id: uuid.UUID, now: datetime) -> int:
    """PARK_DELIVERIES: the endpoint is disabled; its pending deliveries are held, out of the
    claim's sight, keeping their due instants. A run that holds one loses its claim (its
    POST, if already sent, is sent again once the endpoint is back: at least once)."""
    stmt = (
        update(D)
        .where(D.endpoint_id == endpoint_id, D.state == PENDING)
        .values(state=HELD, **RELEASED, updated_at=now)
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
