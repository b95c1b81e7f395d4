"""Listing bookings: filters, and keyset pages ordered by (scheduled_at, id).

A page after a cursor starts strictly after that (scheduled_at, id), so rows inserted or
cancelled while a caller pages neither repeat nor shift rows that existed before (an OFFSET
would do both).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from models import Problem, ScheduledStream, StreamState
from worker.bookings.booking import parse_ref, parse_uuid
from worker.bookings.timeparse import parse_instant
from worker.errors import BookingError

S = ScheduledStream
MAX_LIMIT = 10_000


def list_streams(
    session: Session,
    *,
    states: Sequence[str] = (),
    problems: Sequence[str] = (),
    meeting_id: str | uuid.UUID | None = None,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    ref: str | None = None,
    search: str | None = None,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 100,
) -> list[ScheduledStream]:
    """Bookings ordered by start time (then id), filtered by state, problem flag, meeting,
    start-time range, external reference, and ``search`` (the exact ref or name); with
    ``after``, only those after that (scheduled_at, id)."""
    query = _filtered(
        select(S),
        states=states,
        problems=problems,
        meeting_id=meeting_id,
        start=start,
        end=end,
        ref=ref,
        search=search,
    )
    if after is not None:
        at, last_id = after
        query = query.where(or_(S.scheduled_at > at, and_(S.scheduled_at == at, S.id > last_id)))
    if not 1 <= limit <= MAX_LIMIT:
        raise BookingError("limit", f"must be between 1 and {MAX_LIMIT}")
    query = query.order_by(S.scheduled_at, S.id).limit(limit)
    return list(session.scalars(query))


def count_streams(session: Session, **filters: Any) -> int:
    """How many bookings ``list_streams``' filters (no cursor, no limit) select."""
    return session.scalar(_filtered(select(func.count()).select_from(S), **filters)) or 0


def _filtered(
    query: Select[Any],
    *,
    states: Sequence[str] = (),
    problems: Sequence[str] = (),
    meeting_id: str | uuid.UUID | None = None,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    ref: str | None = None,
    search: str | None = None,
) -> Select[Any]:
    if states:
        query = query.where(S.state.in_(_known("state", states, StreamState)))
    if problems:
        # Flags are rare, so PostgreSQL reads them off ix_scheduled_streams_problem and sorts
        # the few it finds, instead of walking every booking in start order.
        query = query.where(S.problem.in_(_known("problem", problems, Problem)))
    if meeting_id is not None:
        query = query.where(S.meeting_id == parse_uuid("meeting_id", meeting_id))
    if start is not None:
        query = query.where(S.scheduled_at >= parse_instant(start, None, "from")[0])
    if end is not None:
        query = query.where(S.scheduled_at < parse_instant(end, None, "to")[0])
    if ref is not None:
        # Checked as booking checks it: PostgreSQL refuses a NUL in a query, and that refusal
        # read as "the database is unavailable" (503) for what is the caller's input.
        query = query.where(S.external_ref == parse_ref(ref))
    if search is not None:
        # Exact, not a substring: the ref is found by its unique index, so a search stays an
        # index probe on a million rows (a LIKE '%...%' would read them all).
        text = parse_ref(search)
        query = query.where(or_(S.external_ref == text, S.name == text))
    return query


def _known(field: str, values: Sequence[str], kind: type[StrEnum]) -> list[str]:
    known = {k.value for k in kind}
    for value in values:
        if value not in known:
            raise BookingError(
                field, f"unknown {field} {value!r}; one of {', '.join(sorted(known))}"
            )
    return list(values)
