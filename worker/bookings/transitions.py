"""The booking row's transitions once it is claimed or booked: each one conditional UPDATE.

A start run ends with exactly one of ``finish_started``, ``finish_failed``, ``finish_retrying``
or ``finish_missed``; each writes only while the run still holds its claim
(:data:`CLAIM_HELD`) and releases it. Ops commands (cancel, retry, reschedule) use
``transition``, which applies only from the states it names. Whoever's condition still holds
when the database applies the statement wins; everyone else changes nothing.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Update, and_, bindparam, update
from sqlalchemy.orm import Session

from models import EventType, ScheduledStream, StreamState
from worker.lease import claims as leasing
from worker.notify import outbox
from worker.upstream.responses import Livestream

S = ScheduledStream

# The start's claim is still held: the row is ``starting`` under the run's token. Every write
# of a start run is conditional on it (worker.start.claims confirms and takes back under it).
CLAIM_HELD = leasing.held(S, S.state == StreamState.STARTING.value)


def finish_started(
    session: Session,
    stream_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    livestream: Livestream,
    stream_key: str,
    first_check: datetime,
) -> bool:
    """``started``: the livestream and its key (``stream_key``, encrypted) are stored. True if
    written. From here the row is tracked: its first status check is due at ``first_check``.

    Written in the transaction that closes the call's attempt, so a booking is never
    ``started`` without the call that started it, nor the reverse.
    """
    written = _finish(
        session,
        stream_id,
        token,
        now,
        state=StreamState.STARTED.value,
        started_at=now,
        last_error=None,
        stream_key_ciphertext=stream_key,
        due_at=first_check,
        status_observed_at=now,
        **_livestream_columns(livestream),
    )
    return outbox.after(written, session, EventType.BOOKING_STARTED, stream_id, now)


def finish_started_many(
    session: Session,
    started: list[tuple[uuid.UUID, uuid.UUID, Livestream, str]],
    now: datetime,
    first_check: datetime,
) -> None:
    """:func:`finish_started` for many bookings at once, each (id, token, livestream, stream
    key ciphertext) still the conditional UPDATE under its own claim, run as one executemany.
    Which were written is for the caller to read back (a driver may not count per row); it
    emits their events."""
    if not started:
        return
    rows = []
    for stream_id, token, livestream, ciphertext in started:
        values = {
            "state": StreamState.STARTED.value,
            "started_at": now,
            "last_error": None,
            "stream_key_ciphertext": ciphertext,
            "due_at": first_check,
            "status_observed_at": now,
            **_livestream_columns(livestream),
        }
        rows.append(
            {
                "p_id": stream_id,
                "p_token": token,
                "p_now": now,
                **{f"v_{name}": value for name, value in values.items()},
            }
        )
    columns = tuple(sorted(k[2:] for k in rows[0] if k.startswith("v_")))
    session.connection().execute(_finish_statement(columns), rows)


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
    written = _finish(
        session,
        stream_id,
        token,
        now,
        state=StreamState.FAILED.value,
        last_error=reason,
        **columns,
    )
    return outbox.after(written, session, EventType.BOOKING_FAILED, stream_id, now)


def finish_retrying(
    session: Session,
    stream_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    due_at: datetime,
    reason: str,
    livestream: Livestream | None = None,
) -> bool:
    """``retrying``, due again at ``due_at``. True if written.

    The claim is released: the next tick at or after ``due_at`` claims the row afresh, so a
    retry survives a killed worker or a flushed broker (no task waits for it). With
    ``livestream``: one exists whose stream key could not be fetched yet; ops see it meanwhile.
    """
    columns = _livestream_columns(livestream) if livestream is not None else {}
    return _finish(
        session,
        stream_id,
        token,
        now,
        state=StreamState.RETRYING.value,
        due_at=due_at,
        last_error=reason,
        **columns,
    )


def finish_missed(
    session: Session, stream_id: uuid.UUID, token: uuid.UUID, now: datetime, reason: str
) -> bool:
    """``missed``: the start deadline passed before any call was made. True if written."""
    written = _finish(
        session, stream_id, token, now, state=StreamState.MISSED.value, last_error=reason
    )
    return outbox.after(written, session, EventType.BOOKING_MISSED, stream_id, now)


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
            claim_owner=None,
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
