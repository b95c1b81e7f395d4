"""The conditional UPDATEs that make each booking start once. All state and lease writes live here.

Every statement is a single conditional UPDATE: whoever's condition still holds when the
database applies it wins, and everyone else changes nothing. Two dispatchers, a replayed
broker message or a worker that comes back from the dead therefore cost a wasted query,
never a second start.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Update, and_, bindparam, case, exists, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from models import CLAIMABLE_STATES, ScheduledStream, StartAttempt, StreamState, UpstreamPause
from worker.attempts import UNCLEAR_START_CALL
from worker.responses import Livestream

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


def _skip_locked(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _take(
    session: Session,
    where: list[ColumnElement[bool]],
    order_by: InstrumentedAttribute[Any],
    batch: int,
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
    rows = session.execute(stmt).all()
    return sorted((Claim(r[0], token, r[1]) for r in rows), key=lambda c: c.due_at)


def claim_due(
    session: Session, now: datetime, *, lookahead: float, lease: float, batch: int
) -> list[Claim]:
    """Claim up to ``batch`` rows due by ``now + lookahead``, oldest first.

    ``now`` must be the database's clock (models.db.db_now) so that beats on different hosts
    agree. Rows are claimed ahead of their instant so the start task can wait in the worker
    for its ETA and leave on time although the tick is coarse. The lease runs from the end of
    the lookahead, so it cannot run out before the task's ETA even for a row claimed early.
    """
    horizon = now + timedelta(seconds=lookahead)
    return _take(
        session,
        [S.state.in_([s.value for s in CLAIMABLE_STATES]), S.due_at <= horizon],
        S.due_at,
        batch,
        state=StreamState.STARTING.value,
        lease_expires_at=horizon + timedelta(seconds=lease),
        updated_at=now,
    )


def reap_expired(session: Session, now: datetime, *, lease: float, batch: int) -> list[Claim]:
    """Take back rows whose start task vanished (killed worker, lost message, flushed broker).

    The row stays ``starting`` under a fresh token, so the old task, if it ever runs or comes
    back, matches nothing. The new task reconciles any unfinished attempt before it posts.
    """
    return _take(
        session,
        [S.state == StreamState.STARTING.value, S.lease_expires_at < now],
        S.lease_expires_at,
        batch,
        lease_expires_at=now + timedelta(seconds=lease),
        due_at=now,
        updated_at=now,
    )


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
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount  # type: ignore[attr-defined, no-any-return]


def _confirm_statement(*guards: ColumnElement[bool], returning: list[Any]) -> Update:
    """The UPDATE that takes a claim for one call, under ``guards`` besides the claim itself.

    The token is replaced, so a claim is good for one run only: the same start message
    delivered twice, even to two workers at once, confirms once, and the other run finds a
    token that no longer matches. Built once per process, so each run only binds values.
    """
    return (
        update(S)
        .where(CLAIM_HELD, *guards)
        .values(
            attempts=S.attempts + 1,
            claim_token=bindparam("renewed"),
            lease_expires_at=bindparam("lease_until"),
            updated_at=bindparam("now"),
        )
        .returning(*returning)
    )


def _confirm(
    session: Session,
    stmt: Update,
    stream_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    lease: float,
    **params: Any,
) -> tuple[uuid.UUID, Row[Any]] | None:
    renewed = uuid.uuid4()
    values = {
        "p_id": stream_id,
        "p_token": token,
        "now": now,
        "renewed": renewed,
        "lease_until": now + timedelta(seconds=lease),
        **params,
    }
    row = session.connection().execute(stmt, values).one_or_none()
    return None if row is None else (renewed, row)


_CONFIRM = _confirm_statement(returning=[S.attempts])


def confirm_claim(
    session: Session, stream_id: uuid.UUID, token: uuid.UUID, now: datetime, *, lease: float
) -> tuple[int, uuid.UUID] | None:
    """Take the claim for one call: the new attempt number and the token that now holds it.

    Called in the transaction that writes the attempt row ahead of the call, so the attempt
    exists before the request leaves and the lease covers it.
    """
    confirmed = _confirm(session, _CONFIRM, stream_id, token, now, lease)
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
        S.video_height, S.start_deadline,
    ],
)  # fmt: skip


def confirm_plain_start(
    session: Session,
    stream_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    *,
    lease: float,
    token_key: str,
) -> tuple[uuid.UUID, Row[Any]] | None:
    """:func:`confirm_claim` for the plain case, returning the booking's fields with it.

    None when anything is not plain (the claim is gone, the deadline passed, an earlier call
    is unclear, the token is paused): nothing was changed, and the caller looks closer.
    """
    return _confirm(
        session, _CONFIRM_PLAIN_START, stream_id, token, now, lease, token_key=token_key
    )


# -- the end of a start run: each writes only while the claim is held, and releases it ------


def finish_started(
    session: Session,
    stream_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    livestream: Livestream,
    stream_key: str,
) -> bool:
    """``started``: the livestream and its key (``stream_key``, encrypted) are stored. True if
    written.

    Written in the transaction that closes the call's attempt, so a booking is never
    ``started`` without the call that started it, nor the reverse.
    """
    return _finish(
        session, stream_id, token, now,
        state=StreamState.STARTED.value, started_at=now, last_error=None,
        stream_key_ciphertext=stream_key, **_livestream_columns(livestream),
    )  # fmt: skip


def finish_failed(
    session: Session,
    stream_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    reason: str,
    livestream: Livestream | None = None,
) -> bool:
    """``failed`` for ``reason``. True if written.

    With ``livestream``: one exists upstream but cannot be used (no stream key); it is kept
    so that ops can find it, and the booking is never started again.
    """
    columns = _livestream_columns(livestream) if livestream is not None else {}
    return _finish(
        session, stream_id, token, now, state=StreamState.FAILED.value, last_error=reason,
        **columns,
    )  # fmt: skip


def finish_retrying(
    session: Session,
    stream_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    due_at: datetime,
    reason: str,
) -> bool:
    """``retrying``, due again at ``due_at``. True if written.

    The claim is released: the next tick at or after ``due_at`` claims the row afresh, so a
    retry survives a killed worker or a flushed broker (no task waits for it).
    """
    return _finish(
        session, stream_id, token, now,
        state=StreamState.RETRYING.value, due_at=due_at, last_error=reason,
    )  # fmt: skip


def finish_missed(
    session: Session, stream_id: uuid.UUID, token: uuid.UUID, now: datetime, reason: str
) -> bool:
    """``missed``: the start deadline passed before any call was made. True if written."""
    return _finish(
        session, stream_id, token, now, state=StreamState.MISSED.value, last_error=reason
    )


def _livestream_columns(livestream: Livestream) -> dict[str, Any]:
    return {
        "livestream_id": livestream.id,
        "ingest_server": livestream.ingest_server,
        "playback_url": livestream.playback_url,
        "livestream_status": livestream.status,
    }


def _finish(
    session: Session, stream_id: uuid.UUID, token: uuid.UUID, now: datetime, **values: Any
) -> bool:
    params = {"p_id": stream_id, "p_token": token, "p_now": now}
    params.update({f"v_{name}": value for name, value in values.items()})
    result = session.connection().execute(_finish_statement(tuple(sorted(values))), params)
    return bool(result.rowcount)


@functools.cache
def _finish_statement(columns: tuple[str, ...]) -> Update:
    """The UPDATE of :func:`_finish` for one set of columns, built once per process."""
    return (
        update(S)
        .where(CLAIM_HELD)
        .values(
            claim_token=None,
            lease_expires_at=None,
            updated_at=bindparam("p_now"),
            **{name: bindparam(f"v_{name}") for name in columns},
        )
    )


def transition(
    session: Session,
    stream_id: uuid.UUID,
    from_states: tuple[StreamState, ...],
    now: datetime,
    *,
    guard: ColumnElement[bool] | None = None,
    **values: Any,
) -> bool:
    """An ops transition (cancel, retry, reschedule), only from ``from_states``. True if applied.

    Conditional, so a cancel that races the dispatcher either lands before the claim (no call
    is made) or finds the row ``starting`` and changes nothing. ``guard`` is one more condition
    of the same UPDATE, so it holds when the row changes, not only when it was read.
    """
    conditions = [S.id == stream_id, S.state.in_([s.value for s in from_states])]
    if guard is not None:
        conditions.append(guard)
    stmt = (
        update(S)
        .where(and_(*conditions))
        .values(updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
