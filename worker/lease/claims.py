"""The one claim machinery: how a row is taken, held, confirmed, finished, sent again and taken
back, for starts, status checks and stops, and webhook deliveries alike (docs/DESIGN.md,
"Leases").

A leased row carries a claim token, a lease, the instant it was handed out (``claimed_at``) and,
once a run took it up, its owner (the heartbeat id of that run's process,
worker.lease.heartbeat). Every statement here is one conditional UPDATE: whoever's condition
still holds when the database applies it wins, and everyone else changes nothing. Two
dispatchers, a replayed broker message or a worker that comes back from the dead therefore
cost a wasted query, never a second call.

The flows (worker.start.claims, worker.follow.claims, worker.notify.claims) say *which* rows
and *what else* a statement writes; the clauses that make it a claim are written once, here.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Update,
    and_,
    bindparam,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session

from models import ScheduledStream, WebhookDelivery, WorkerHeartbeat
from worker.lease.rules import send_again

# The tables whose rows are leased: bookings (starts, checks, stops) and webhook deliveries.
Leased = type[ScheduledStream] | type[WebhookDelivery]


class ClaimKind(enum.StrEnum):
    """What a claim is for, and so which task runs it (worker.tasks)."""

    START = "start"  # a booking to start (livestreams.launch, livestreams.start_stream)
    TRACK = "track"  # a started or live booking to check or stop (livestreams.track_stream)
    WEBHOOK = "webhook"  # an outbound webhook delivery (livestreams.deliver_webhook)


@dataclass(frozen=True)
class Claim:
    """A row handed out under ``token`` until its lease runs out, to be run at ``due_at``."""

    row_id: uuid.UUID  # the booking's id, or the webhook delivery's
    token: uuid.UUID
    due_at: datetime
    kind: ClaimKind


def held(table: Leased, state: ColumnElement[bool]) -> ColumnElement[bool]:
    """The clause every write of a run is conditional on: the row (``p_id``) is in ``state``
    under the run's token (``p_token``). A run whose claim was taken back (expired lease,
    dead owner, an ops command) changes nothing, whatever it tries."""
    return and_(table.id == bindparam("p_id"), state, table.claim_token == bindparam("p_token"))


def skip_locked(session: Session, query: Select[Any]) -> Select[Any]:
    """On PostgreSQL, concurrent ticks take disjoint rows instead of queueing behind each
    other's row locks. SQLite serialises whole transactions already (models.db)."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


def take(
    session: Session,
    table: Leased,
    kind: ClaimKind,
    where: Sequence[ColumnElement[bool]],
    batch: int,
    *,
    params: dict[str, Any] | None = None,
    **values: Any,
) -> list[Claim]:
    """TAKE: set ``values`` and a fresh claim token on up to ``batch`` rows matching
    ``where``, oldest due first; the claims, in due order.

    One token per statement is enough: a row is taken at most once per statement. A fresh
    token makes every earlier run's writes match nothing.
    """
    if batch <= 0:
        return []
    token = uuid.uuid4()
    pick = skip_locked(session, select(table.id).where(*where).order_by(table.due_at).limit(batch))
    stmt = (
        update(table)
        .where(table.id.in_(pick.scalar_subquery()))
        .values(claim_token=token, **values)
        .returning(table.id, table.due_at)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(stmt, params or {}).all()
    return sorted((Claim(r[0], token, r[1], kind) for r in rows), key=_due)


def owner_died(table: Leased, now: datetime, owner_timeout: float) -> ColumnElement[bool]:
    """The run that took the row's claim up has a process that stopped beating
    ``owner_timeout`` seconds ago or more."""
    alive = exists().where(
        WorkerHeartbeat.id == table.claim_owner,
        WorkerHeartbeat.beat_at >= now - timedelta(seconds=owner_timeout),
    )
    return and_(table.claim_owner.is_not(None), ~alive)


def not_taken_up(table: Leased, by: datetime) -> list[ColumnElement[bool]]:
    """Handed out for ``by`` or earlier, and no run has confirmed it since."""
    return [
        table.claim_token.is_not(None),
        table.claim_owner.is_(None),
        table.due_at <= by,
        table.claimed_at <= by,
    ]


def unconfirmed(session: Session, table: Leased, where: ColumnElement[bool], now: datetime) -> int:
    """Claims of ``table`` handed out for now or earlier that no run has confirmed yet: their
    messages wait in the broker (claims held for a later instant, their ETA, are not in it
    yet). ``where`` names the flow's rows, so its index bounds the scan."""
    return session.scalar(select(func.count()).where(where, *not_taken_up(table, now))) or 0


def resend(
    session: Session,
    table: Leased,
    kind: ClaimKind,
    now: datetime,
    where: Sequence[ColumnElement[bool]],
    *,
    lease: float,
    batch: int,
    pickup_grace: float,
) -> list[Claim]:
    """RESEND_CLAIMS: up to ``batch`` rows matching ``where`` whose claim no run took up
    within ``pickup_grace`` (worker.lease.rules.send_again), oldest first, handed out again
    now under the same token (claimed_at, and a fresh lease).

    A lost message (a flushed broker, a killed worker's prefetch) and one merely queued behind
    a slow pool look alike from the database, so the claim is sent again without being taken
    back: whichever message comes first runs it, and the other finds its token renewed.
    """
    if batch <= 0:
        return []
    picked_up_by = now - timedelta(seconds=pickup_grace)
    pending = (*where, *not_taken_up(table, picked_up_by))
    query = select(table.id, table.due_at, table.claimed_at).where(*pending)
    query = skip_locked(session, query.order_by(table.due_at).limit(batch))
    ids = [
        r.id
        for r in session.execute(query)
        if send_again(r.due_at, r.claimed_at, now, pickup_grace)
    ]
    if not ids:
        return []
    stmt = (
        update(table)
        .where(table.id.in_(ids), *pending)  # not taken up meanwhile
        .values(claimed_at=now, lease_expires_at=now + timedelta(seconds=lease), updated_at=now)
        .returning(table.id, table.claim_token, table.due_at)
        .execution_options(synchronize_session=False)
    )
    return sorted((Claim(r[0], r[1], r[2], kind) for r in session.execute(stmt)), key=_due)


def _due(claim: Claim) -> datetime:
    return claim.due_at


def confirm_statement(
    table: Leased,
    is_held: ColumnElement[bool],
    *guards: ColumnElement[bool],
    returning: Sequence[Any],
) -> Update:
    """CONFIRM: the UPDATE by which a run takes its claim up for one call, under ``guards``
    besides the claim itself: one more attempt, this process as the owner, a fresh lease.

    The token is replaced, so a claim is good for one run only: the same message delivered
    twice, even to two workers at once, confirms once, and the other run finds a token that
    no longer matches. Built once per process, so each run only binds values
    (:func:`confirm_with`).
    """
    return (
        update(table)
        .where(is_held, *guards)
        .values(
            attempts=table.attempts + 1,
            claim_token=bindparam("renewed"),
            claim_owner=bindparam("owner"),
            lease_expires_at=bindparam("lease_until"),
            updated_at=bindparam("now"),
        )
        .returning(*returning)
    )


def confirm_with(
    session: Session,
    stmt: Update,
    row_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    lease: float,
    owner: uuid.UUID,
    **params: Any,
) -> tuple[uuid.UUID, Row[Any]] | None:
    """Run a :func:`confirm_statement`: the token that now holds the claim and the row it
    returned, or None when the claim is gone (nothing was changed)."""
    renewed = uuid.uuid4()
    values = {
        "p_id": row_id,
        "p_token": token,
        "owner": owner,
        "now": now,
        "renewed": renewed,
        "lease_until": now + timedelta(seconds=lease),
        **params,
    }
    row = session.connection().execute(stmt, values).one_or_none()
    return None if row is None else (renewed, row)


def while_held(
    session: Session,
    table: Leased,
    is_held: ColumnElement[bool],
    row_id: uuid.UUID,
    token: uuid.UUID,
    **values: Any,
) -> bool:
    """FINISH_WHILE_HELD: write ``values`` only while the run still holds its claim
    (``is_held``, from :func:`held`). True if written."""
    stmt = update(table).where(is_held).values(**values)
    result = session.execute(
        stmt.execution_options(synchronize_session=False), {"p_id": row_id, "p_token": token}
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# What releasing a claim writes, whatever the flow.
RELEASED: dict[str, Any] = {"claim_token": None, "claim_owner": None, "lease_expires_at": None}
