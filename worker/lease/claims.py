"""The conditional UPDATEs that make each booking start once. All state and lease writes live here.

Every statement is a single conditional UPDATE: whoever's condition still holds when the
database applies it wins, and everyone else changes nothing. Two dispatchers, a replayed
broker message or a worker that comes back from the dead therefore cost a wasted query,
never a second start.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Update,
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from models import (
    CLAIMABLE_STATES,
    EventType,
    ScheduledStream,
    StartAttempt,
    StreamState,
    UpstreamPause,
    WorkerHeartbeat,
)
from worker.lease.resend import redeliver
from worker.notify import outbox
from worker.upstream.attempts import UNCLEAR_START_CALL

S = ScheduledStream
A = StartAttempt

# The claim is still held: the row is ``starting`` under the run's token. Every write of a
# start run is conditional on it, so a run whose claim was taken back (expired lease, reaper)
# changes nothing, whatever it tries.
CLAIM_HELD = and_(
    S.id == bindparam("p_id"),
    S.state == StreamState.STARTING.value,
    S.claim_token == bindparam("p_token"),
)


@dataclass(frozen=True)
class Claim:
    """A row this process now owns until ``lease_expires_at``, and must start at ``due_at``."""

    stream_id: uuid.UUID
    token: uuid.UUID
    due_at: datetime
    kind: str = "start"  # or "track" (worker.follow.claims): which task runs it


def _skip_locked(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def take(
    session: Session,
    where: list[ColumnElement[bool]],
    order_by: InstrumentedAttribute[Any],
    batch: int,
    *,
    params: dict[str, Any] | None = None,
    **values: Any,
) -> list[Claim]:
    """Set ``values`` and a fresh claim token on up to ``batch`` rows matching ``where``.

    One token per statement is enough: a row is taken at most once per statement.
    """
    token = uuid.uuid4()
    pick = select(S.id).where(*where).order_by(order_by).limit(batch)
    if _skip_locked(session):
        # Concurrent dispatchers take disjoint rows instead of queueing behind each other.
        pick = pick.with_for_update(skip_locked=True)
    stmt = (
        update(S)
        .where(S.id.in_(pick.scalar_subquery()))
        .values(claim_token=token, **values)
        .returning(S.id, S.due_at)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(stmt, params or {}).all()
    return sorted((Claim(r[0], token, r[1]) for r in rows), key=lambda c: c.due_at)


def claim_due(
    session: Session,
    now: datetime,
    *,
    lookahead: float,
    lease: float,
    batch: int,
    not_before: datetime | None = None,
) -> list[Claim]:
    """Claim up to ``batch`` rows due by ``now + lookahead``, oldest first.

    ``now`` must be the database's clock (models.db.db_now) so that beats on different hosts
    agree. Rows are claimed ahead of their instant so the start task can wait in the worker
    for its ETA and leave on time although the tick is coarse. The lease runs from the end of
    the lookahead, so it cannot run out before the task's ETA even for a row claimed early.
    ``not_before`` (the end of a rate-limit pause within the lookahead) holds every claim
    until then: the starts leave as the pause ends, not at the first tick after it.
    """
    horizon = now + timedelta(seconds=lookahead)
    handed_out = max(now, not_before) if not_before is not None else now
    claimed = take(
        session,
        [S.state.in_([s.value for s in CLAIMABLE_STATES]), S.due_at <= horizon],
        S.due_at,
        batch,
        state=StreamState.STARTING.value,
        lease_expires_at=horizon + timedelta(seconds=lease),
        claim_owner=None,
        claimed_at=handed_out,  # the pickup grace runs from when the run is expected
        updated_at=now,
    )
    return [replace(c, due_at=max(c.due_at, handed_out)) for c in claimed]


# A claim is taken back after this many vanished runs: the booking then fails with a reason
# instead of being handed out for ever to runs that die (a poison row, a crashing process).
# Only a run that took the claim up (confirmed it: claim_owner set) and vanished counts. A
# claim no run took up in time (its message lost, or still queued behind a slow pool) says
# nothing about the booking: it is handed out again, uncounted, for as long as the start's
# own deadline allows; counting those failed whole bursts on an overloaded machine.
MAX_RECLAIMS = 5
# The row's run had taken the claim up when it was lost.
_RUN_VANISHED = S.claim_owner.is_not(None)


def _lost(now: datetime, owner_timeout: float | None) -> ColumnElement[bool]:
    """A ``starting`` row whose run has vanished: its lease ran out, or the run that took it
    up stopped beating (``owner_timeout``; None: do not judge owners now). An owner that beats
    keeps its claim until the lease runs out, and the lease outlives the longest call, so a
    call in flight is never taken over. (A claim no run took up is not lost but sent again:
    worker.lease.resend.)"""
    lost = [S.lease_expires_at < now]
    if owner_timeout is not None:
        lost.append(owner_died(now, owner_timeout))
    return and_(S.state == StreamState.STARTING.value, or_(*lost))


def owner_died(now: datetime, owner_timeout: float) -> ColumnElement[bool]:
    """The run that took the row's claim up has a process that stopped beating
    ``owner_timeout`` seconds ago or more (starts and track runs alike)."""
    alive = exists().where(
        WorkerHeartbeat.id == S.claim_owner,
        WorkerHeartbeat.beat_at >= now - timedelta(seconds=owner_timeout),
    )
    return and_(S.claim_owner.is_not(None), ~alive)


def unconfirmed(session: Session, now: datetime) -> int:
    """Claims handed out for now or earlier, that no run has confirmed yet: the queue in the
    broker (claims held for a later instant, their ETA, are not in it yet)."""
    query = select(func.count()).where(
        S.state == StreamState.STARTING.value,
        S.claim_owner.is_(None),
        S.due_at <= now,
        S.claimed_at <= now,
    )
    return session.scalar(query) or 0


def reap(
    session: Session,
    now: datetime,
    *,
    lease: float,
    batch: int,
    pickup_grace: float,
    owner_timeout: float | None,
    resend: int | None = None,
) -> list[Claim]:
    """Hand out again the claims no run took up within ``pickup_grace`` (a lost message, a
    killed worker's prefetch: worker.lease.resend, same token), at most ``resend`` of them, and
    take back the rows whose run vanished (killed worker, dead owner, lease run out).

    A row taken back stays ``starting`` under a fresh token and no owner, so the old run, if it
    ever comes back, matches nothing. The new run reconciles any unfinished attempt before it
    posts. Either way the row keeps its due instant, and so its place in the queue.
    """
    again = [
        Claim(ident, token, due_at)
        for ident, token, due_at in redeliver(
            session, now, [S.state == StreamState.STARTING.value], lease=lease,
            batch=batch if resend is None else min(batch, resend), pickup_grace=pickup_grace,
        )
    ]  # fmt: skip
    taken = take(
        session,
        [_lost(now, owner_timeout), or_(S.reclaims < MAX_RECLAIMS, ~_RUN_VANISHED)],
        S.due_at,
        batch - len(again),
        lease_expires_at=now + timedelta(seconds=lease),
        claim_owner=None,
        claimed_at=now,
        reclaims=S.reclaims + case((_RUN_VANISHED, 1), else_=0),  # the row as it was
        updated_at=now,
    )
    return sorted([*again, *taken], key=lambda c: c.due_at)


def fail_reclaimed(session: Session, now: datetime, *, owner_timeout: float | None) -> int:
    """Fail the rows whose run vanished again after runs had vanished :data:`MAX_RECLAIMS`
    times already.

    Their claim is released; the reason says that an earlier call may have created a
    livestream, which ``livestreams attempts`` shows.
    """
    stmt = (
        update(S)
        .where(_lost(now, owner_timeout), S.reclaims >= MAX_RECLAIMS, _RUN_VANISHED)
        .values(
            state=StreamState.FAILED.value,
            claim_token=None,
            claim_owner=None,
            lease_expires_at=None,
            last_error=f"a run that had taken it up vanished {MAX_RECLAIMS + 1} times (killed"
            " workers, or a start that takes its process down); not handed out again. An"
            " earlier call may have created a livestream: see its attempts",
            updated_at=now,
        )
        .returning(S.id)
        .execution_options(synchronize_session=False)
    )
    failed = session.execute(stmt).scalars().all()
    outbox.emit_many(session, EventType.BOOKING_FAILED, failed, now)
    return len(failed)


def expire_untried(session: Session, now: datetime) -> int:
    """Mark ``missed`` the rows whose deadline passed before any call was made for them.

    Rows that were tried are left to the start task: an earlier call may have created a
    livestream, so they must be reconciled before anyone may call them failed.
    """
    stmt = (
        update(S)
        .where(
            S.state.in_([s.value for s in CLAIMABLE_STATES]),
            S.due_at <= now,  # implied by the deadline test; lets the (state, due_at) index work
            S.start_deadline < now,
            S.attempts == 0,
        )
        .values(
            state=StreamState.MISSED.value,
            claim_token=None,
            lease_expires_at=None,
            last_error=case(
                (S.state == StreamState.SCHEDULED.value, "start deadline passed before dispatch"),
                else_="start deadline passed before the retry was due",
            ),
            updated_at=now,
        )
        .returning(S.id)
        .execution_options(synchronize_session=False)
    )
    missed = session.execute(stmt).scalars().all()
    outbox.emit_many(session, EventType.BOOKING_MISSED, missed, now)
    return len(missed)


def _confirm_statement(*guards: ColumnElement[bool], returning: list[Any]) -> Update:
    """The UPDATE that takes a claim for one call, under ``guards`` besides the claim itself.

    The token is replaced, so a claim is good for one run only: the same start message
    delivered twice, even to two workers at once, confirms once, and the other run finds a
    token that no longer matches. Built once per process, so each run only binds values.
    """
    return (
        update(S)
        # Never before the due instant by the database's clock: a worker whose clock runs
        # ahead would otherwise start early (its ETA is read on its own clock).
        .where(CLAIM_HELD, S.due_at <= bindparam("now"), *guards)
        .values(
            attempts=S.attempts + 1,
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
    stream_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    lease: float,
    owner: uuid.UUID,
    **params: Any,
) -> tuple[uuid.UUID, Row[Any]] | None:
    renewed = uuid.uuid4()
    values = {
        "p_id": stream_id,
        "p_token": token,
        "owner": owner,
        "now": now,
        "renewed": renewed,
        "lease_until": now + timedelta(seconds=lease),
        **params,
    }
    row = session.connection().execute(stmt, values).one_or_none()
    return None if row is None else (renewed, row)


_CONFIRM = _confirm_statement(returning=[S.attempts])


def confirm_claim(
    session: Session,
    stream_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    *,
    lease: float,
    owner: uuid.UUID,
) -> tuple[int, uuid.UUID] | None:
    """Take the claim for one call: the new attempt number and the token that now holds it.

    Called in the transaction that writes the attempt row ahead of the call, so the attempt
    exists before the request leaves and the lease covers it. ``owner`` is the process's
    heartbeat id (worker.lease.heartbeat): while it beats, the claim is not taken back.
    """
    confirmed = confirm_with(session, _CONFIRM, stream_id, token, now, lease, owner)
    return None if confirmed is None else (confirmed[1].attempts, confirmed[0])


# The plain case of a start task: besides the claim, the start deadline has not passed, no
# earlier start call of this booking may have created a livestream, and the API token is not
# paused. It returns what the call needs, so the run reads nothing else.
_CONFIRM_PLAIN_START = _confirm_statement(
    S.start_deadline >= bindparam("now"),
    ~exists().where(A.stream_id == S.id, UNCLEAR_START_CALL),
    ~exists().where(
        UpstreamPause.token_hash == bindparam("token_key"),
        UpstreamPause.paused_until > bindparam("now"),
    ),
    returning=[
        S.attempts, S.account_id, S.app_id, S.meeting_id, S.name, S.video_width,
        S.video_height, S.start_deadline, S.scheduled_at,
    ],
)  # fmt: skip


def confirm_plain_start(
    session: Session,
    stream_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    *,
    lease: float,
    owner: uuid.UUID,
    token_key: str,
) -> tuple[uuid.UUID, Row[Any]] | None:
    """:func:`confirm_claim` for the plain case, returning the booking's fields with it.

    None when anything is not plain (the claim is gone, the deadline passed, an earlier call
    is unclear, the token is paused): nothing was changed, and the caller looks closer.
    """
    return confirm_with(
        session, _CONFIRM_PLAIN_START, stream_id, token, now, lease, owner, token_key=token_key
    )
