"""The attempt rows: one per call to the upstream API, written ahead of the call.

An attempt row is inserted in the transaction that confirms the claim for its call (see
``worker.start.claims.confirm_claim``), so it exists before the request leaves. Its outcome is
written with the booking's new state, in one transaction. A row left without an outcome
belongs to a run that died mid-call: the call's effect is unknown, and the next run must
reconcile before it may start again (docs/DESIGN.md "Exactly one start per booking", step 3).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from models import AttemptAction, AttemptOutcome, StartAttempt
from worker.errors import UpstreamError
from worker.upstream.responses import CallInfo

A = StartAttempt

ORPHANED = "no outcome was recorded: the run making this call stopped before it could write one"

_LATER = aliased(StartAttempt)
# A start call that may have created a livestream: its outcome is unknown or says so, and no
# later reconcile found the meeting without one (``absent``). An ``adopted`` livestream does
# not settle it: the booking must never be started again, so every run reconciles first.
UNCLEAR_START_CALL = and_(
    A.action == AttemptAction.START.value,
    or_(
        A.outcome.is_(None),
        A.outcome.in_([AttemptOutcome.AMBIGUOUS.value, AttemptOutcome.STARTED.value]),
    ),
    ~exists().where(
        _LATER.stream_id == A.stream_id,
        _LATER.number > A.number,
        _LATER.action == AttemptAction.RECONCILE.value,
        _LATER.outcome == AttemptOutcome.ABSENT.value,
    ),
)

# Built once: each call only binds values.
_INSERT = insert(A)
_RESULT_COLUMNS = (
    "finished_at",
    "outcome",
    "http_status",
    "error_code",
    "error_message",
    "ray_id",
    "duration",
    "livestream_id",
)
_FINISH = (
    update(A)
    .where(A.stream_id == bindparam("p_stream_id"), A.number == bindparam("p_number"))
    .values({column: bindparam(f"v_{column}") for column in _RESULT_COLUMNS})
)


def insert_attempt(
    session: Session,
    stream_id: uuid.UUID,
    number: int,
    action: AttemptAction,
    claim_token: uuid.UUID,
    now: datetime,
) -> None:
    """The attempt row for call ``number``, written before the call leaves."""
    session.connection().execute(
        _INSERT,
        {
            "stream_id": stream_id,
            "number": number,
            "action": action.value,
            "claim_token": claim_token,
            "sent_at": now,
        },
    )


def finish_attempt(
    session: Session,
    stream_id: uuid.UUID,
    number: int,
    now: datetime,
    outcome: AttemptOutcome,
    *,
    error: UpstreamError | None = None,
    error_message: str | None = None,
    duration: float | None = None,
    livestream_id: str | None = None,
    call: CallInfo | None = None,
) -> None:
    """Close call ``number`` with its outcome: the error it raised, or the call's details."""
    session.connection().execute(
        _FINISH,
        finished(
            stream_id,
            number,
            now,
            outcome,
            error=error,
            error_message=error_message,
            duration=duration,
            livestream_id=livestream_id,
            call=call,
        ),
    )


def finish_attempts(session: Session, rows: list[dict[str, Any]]) -> None:
    """Close many calls at once (one executemany): each row is made by :func:`finished`."""
    if rows:
        session.connection().execute(_FINISH, rows)


def finished(
    stream_id: uuid.UUID,
    number: int,
    now: datetime,
    outcome: AttemptOutcome,
    *,
    error: UpstreamError | None = None,
    error_message: str | None = None,
    duration: float | None = None,
    livestream_id: str | None = None,
    call: CallInfo | None = None,
) -> dict[str, Any]:
    """The values that close call ``number`` (see :func:`finish_attempt`)."""
    return {
        "p_stream_id": stream_id,
        "p_number": number,
        "v_finished_at": now,
        "v_outcome": outcome.value,
        "v_http_status": error.status if error is not None else _status(call),
        "v_error_code": error.code if error is not None else None,
        "v_error_message": error_message,
        "v_ray_id": error.ray_id if error is not None else _ray_id(call),
        "v_duration": round(duration, 4) if duration is not None else None,
        "v_livestream_id": livestream_id,
    }


def mark_orphaned(session: Session, stream_id: uuid.UUID, before: int, now: datetime) -> None:
    """Close the calls before ``before`` that were left without an outcome.

    They belong to runs whose claim is gone (killed worker, expired lease): say so, rather
    than leave them looking in flight. Their effect stays unknown (``ambiguous``).
    """
    session.execute(
        update(A)
        .where(A.stream_id == stream_id, A.number < before, A.outcome.is_(None))
        .values(
            outcome=AttemptOutcome.AMBIGUOUS.value,
            finished_at=now,
            error_message=ORPHANED,
        )
    )


def calls_since(session: Session, since: datetime) -> int:
    """How many calls were sent after ``since``, whatever came of them."""
    return session.scalar(select(func.count()).where(A.sent_at > since)) or 0


def starts_since(session: Session, since: datetime) -> int:
    """How many start calls were written ahead to leave after ``since`` (those prepared for a
    later instant included): the pace at which the start lane takes claims up."""
    query = select(func.count()).where(A.sent_at > since, A.action == AttemptAction.START.value)
    return session.scalar(query) or 0


def first_unclear_call(session: Session, stream_id: uuid.UUID) -> StartAttempt | None:
    """The booking's first start call whose effect is unknown (UNCLEAR_START_CALL), if any."""
    query = select(A).where(A.stream_id == stream_id, UNCLEAR_START_CALL).order_by(A.number)
    return session.scalars(query.limit(1)).first()


def _status(call: CallInfo | None) -> int | None:
    return call.status if call is not None else None


def _ray_id(call: CallInfo | None) -> str | None:
    return call.ray_id if call is not None else None
