"""Listing bookings: filters, and keyset pages ordered by (scheduled_at, id), either way.

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

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
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
    newest_first: bool = False,
) -> list[ScheduledStream]:
    """Bookings ordered by start time (then id; ``newest_first``: the latest first), filtered
    by state, problem flag, meeting, start-time range, external reference, and ``search`` (see
    :func:`matching`); with ``after``, only those after that (scheduled_at, id) in that order."""
    query = _filtered(
        select(S),
        _dialect(session),
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
        if newest_first:
            later = or_(S.scheduled_at < at, and_(S.scheduled_at == at, S.id < last_id))
        else:
            later = or_(S.scheduled_at > at, and_(S.scheduled_at == at, S.id > last_id))
        query = query.where(later)
    if not 1 <= limit <= MAX_LIMIT:
        raise BookingError("limit", f"must be between 1 and {MAX_LIMIT}")
    order = (S.scheduled_at.desc(), S.id.desc()) if newest_first else (S.scheduled_at, S.id)
    return list(session.scalars(query.order_by(*order).limit(limit)))


def count_streams(session: Session, **filters: Any) -> int:
    """How many bookings ``list_streams``' filters (no cursor, no limit) select."""
    query = _filtered(select(func.count()).select_from(S), _dialect(session), **filters)
    return session.scalar(query) or 0


def matching(text: str, dialect: str) -> ColumnElement[bool]:
    """What one search box finds: a booking by its id, its meeting's id, its livestream id,
    or a ref or name that starts with ``text`` in any case (so also the exact one).

    Each part is an index probe or range (on a million rows the search reads only what it
    finds): the primary key, ix_scheduled_streams_meeting_id, _livestream_id, and lower() of
    the ref and of the name (_ref_lower, _name_lower). PostgreSQL reads a LIKE 'prefix%' off
    those with their text_pattern_ops; SQLite reads the same range written out, in its
    byte order.
    """
    prefix = text.lower()
    found: list[ColumnElement[bool]] = [S.livestream_id == text]
    for column in (S.external_ref, S.name):
        lowered = func.lower(column)
        if dialect == "postgresql":
            found.append(lowered.like(_escape_like(prefix) + "%", escape="\\"))
        else:
            found.append(and_(lowered >= prefix, lowered < prefix + _LAST_CHARACTER))
    try:
        as_uuid = uuid.UUID(text)
    except ValueError:
        pass
    else:
        found += [S.id == as_uuid, S.meeting_id == as_uuid]
    return or_(*found)


# Greater than any character that can follow a prefix: p <= s < p + this holds for every s
# that starts with p, in code point (and UTF-8 byte) order.
_LAST_CHARACTER = "\U0010ffff"


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _filtered(
    query: Select[Any],
    dialect: str,
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
        # A prefix, not a substring: a LIKE '%...%' would read every row of a million.
        text = parse_ref(search)
        assert text is not None
        query = query.where(matching(text, dialect))
    return query


def _known(field: str, values: Sequence[str], kind: type[StrEnum]) -> list[str]:
    known = {k.value for k in kind}
    for value in values:
        if value not in known:
            raise BookingError(
                field, f"unknown {field} {value!r}; one of {', '.join(sorted(known))}"
            )
    return list(values)
