"""The capacity forecast over the database: the starts due, the budget and what a start costs,
read from the same accounting the dispatcher paces by (worker.upstream.pacing), then handed
to the pure forecast (worker.capacity.rules).

- ``guard``: after a booking (or a series' occurrences) is written, in the same transaction:
  the instants it put past the budget, as warnings; asked to be strict, CapacityExceeded,
  and the caller's transaction rolls back (nothing stored).
- ``report``: the starts due per rate window between two instants, at risk first
  (`livestreams capacity`, the ops page).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import AttemptAction, ScheduledStream, StartAttempt, StreamState
from models.db import db_now
from worker.bookings.booking import MAX_START_WINDOW, Scheduled
from worker.capacity import rules
from worker.capacity.rules import Budget, Due, Instant, Spend
from worker.errors import CapacityExceeded
from worker.settings import Settings
from worker.upstream import pacing

S, A = ScheduledStream, StartAttempt
# What a start costs is read from the calls of the last bookings that made a start call, at
# most SAMPLE of them, within HISTORY; with fewer than MIN_HISTORY, it is the product's plain
# path: one start call (its answer carries the key) and one first status check.
HISTORY = timedelta(days=1)
SAMPLE = 200
MIN_HISTORY = 20
_START_SIDE = frozenset(
    {AttemptAction.START.value, AttemptAction.RECONCILE.value, AttemptAction.FETCH_KEY.value}
)
_STARTS = (S.state == StreamState.SCHEDULED.value) | (S.state == StreamState.RETRYING.value)


def budget_of(settings: Settings) -> Budget:
    """The dispatcher's own ceiling: it never claims past the limit times pacing.SAFETY."""
    limit = settings.upstream.rate_limit
    return Budget(int(limit.requests * pacing.SAFETY), limit.window)


def spend_of(session: Session, settings: Settings, now: datetime) -> Spend:
    """What a start costs, from the attempt rows (the calls ``pacing.budget`` counts) of the
    bookings that most recently made a start call: start calls, reconciles and key fetches per
    booking (retries, adoptions), and status checks in the rate window after its start."""
    window = timedelta(seconds=settings.upstream.rate_limit.window)
    # Checks claimed while a start is due within this reach wait (worker.dispatch).
    reach = window.total_seconds() + settings.claims.lookahead + settings.claims.pickup_grace
    recent = (
        select(A.stream_id)
        .where(A.action == AttemptAction.START.value, A.sent_at >= now - HISTORY)
        .group_by(A.stream_id)
        .order_by(func.max(A.sent_at).desc())
        .limit(SAMPLE)
    )
    rows = session.execute(
        select(A.stream_id, A.action, A.sent_at, S.started_at)
        .join(S, S.id == A.stream_id)
        .where(A.stream_id.in_(recent))
    ).all()
    bookings = {row.stream_id for row in rows}
    if len(bookings) < MIN_HISTORY:
        return Spend(1.0, 1.0, settings.cadence.first_check, reach)
    start_calls = sum(1 for row in rows if row.action in _START_SIDE)
    started = {row.stream_id for row in rows if row.started_at is not None}
    checks = sum(
        1
        for row in rows
        if row.action == AttemptAction.STATUS.value
        and row.started_at is not None
        and row.sent_at < row.started_at + window
    )
    per_check = checks / len(started) if started else 1.0
    return Spend(start_calls / len(bookings), per_check, settings.cadence.first_check, reach)


def due_between(session: Session, now: datetime, start: datetime, end: datetime) -> list[Due]:
    """The starts waiting to be made, per instant and start window, due in [start, end] and
    not past their deadline; one overdue is due ``now``. Read through the (state, due_at)
    index: ``start`` bounds the rows a forecast reads however many are booked."""
    rows = session.execute(
        select(S.due_at, S.start_deadline, func.count())
        .where(_STARTS, S.due_at >= start, S.due_at <= end, S.start_deadline >= now)
        .group_by(S.due_at, S.start_deadline)
    ).all()
    due = []
    for at, deadline, count in rows:
        when = max(at, now)
        due.append(Due(when, int(count), (deadline - when).total_seconds()))
    return due


def spent_since(session: Session, since: datetime) -> list[tuple[datetime, int]]:
    """Calls made since ``since`` (one rate window back): they still count against it."""
    rows = session.execute(
        select(A.sent_at, func.count()).where(A.sent_at > since).group_by(A.sent_at)
    ).all()
    return [(at, int(n)) for at, n in rows]


@dataclass(frozen=True)
class _Inputs:
    """What the pure forecast is given, read once."""

    budget: Budget
    spend: Spend
    due: list[Due]
    spent: list[tuple[datetime, int]]

    def forecast(self, due: list[Due] | None = None) -> list[Instant]:
        return rules.forecast(
            self.due if due is None else due, self.budget, self.spend, spent=self.spent
        )


def _inputs(
    session: Session, settings: Settings, now: datetime, start: datetime, end: datetime
) -> _Inputs:
    """The forecast's inputs for starts due in [start, end], and those before ``start`` that
    may still be waiting then (due up to a start window and a rate window earlier)."""
    budget = budget_of(settings)
    earliest = max(start, now) - timedelta(seconds=MAX_START_WINDOW + budget.window)
    return _Inputs(
        budget,
        spend_of(session, settings, now),
        due_between(session, now, earliest, end),
        spent_since(session, now - timedelta(seconds=budget.window)),
    )


def guard(
    session: Session,
    settings: Settings,
    new: Iterable[tuple[datetime, float]],
    *,
    strict: bool = False,
) -> list[str]:
    """Warnings for the instants that the bookings just written (``new``: each one's instant
    and start window, already in ``session``) put past the token's budget; [] when none.

    ``strict``: raise CapacityExceeded instead, so the caller's transaction rolls back.
    """
    added = list(new)
    if not added:
        return []
    session.flush()
    now = db_now(session)
    # Every start that can share a rate window with the new ones, or still wait for one.
    window = settings.upstream.rate_limit.window
    end = max(at + timedelta(seconds=w + window) for at, w in added)
    read = _inputs(session, settings, now, min(at for at, _ in added), end)
    after, before = read.forecast(), read.forecast(_minus(read.due, added, now))
    lines = [rules.describe(i, read.budget, stamp(i.at)) for i in rules.worsened(before, after)]
    if lines and strict:
        raise CapacityExceeded(tuple(lines))
    return lines


def booked(result: Scheduled) -> list[tuple[datetime, float]]:
    """What ``guard`` checks after a booking: the new booking's instant and window, or
    nothing when it was booked before (the same ref again)."""
    stream = result.stream
    return [(stream.due_at, stream.start_window)] if result.created else []


def _minus(due: list[Due], added: list[tuple[datetime, float]], now: datetime) -> list[Due]:
    """``due`` without the new bookings (each as ``due_between`` grouped it)."""
    counts: dict[tuple[datetime, float], int] = {}
    for at, window in added:
        key = (max(at, now), window)
        counts[key] = counts.get(key, 0) + 1
    out = []
    for d in due:
        n = d.count - counts.pop((d.at, d.window), 0)
        if n > 0:
            out.append(Due(d.at, n, d.window))
    return out


@dataclass(frozen=True)
class Window:
    """The starts due in one rate window, and what the forecast expects of them."""

    start: datetime
    end: datetime
    starts: int
    calls: float  # the calls they cost, at what a start costs
    budget: int
    late: int
    missed: int
    instants: tuple[Instant, ...]  # those at risk, the worst first

    @property
    def at_risk(self) -> bool:
        return self.late > 0 or self.missed > 0


@dataclass(frozen=True)
class Report:
    start: datetime
    end: datetime
    budget: Budget
    spend: Spend
    windows: tuple[Window, ...]  # at risk first (most missed, then most late), then in time


def report(
    session: Session, settings: Settings, start: datetime | None, end: datetime | None
) -> Report:
    """The starts due per rate window in [start, end] (default: now to a day on), at risk first."""
    now = db_now(session)
    start = max(start or now, now)
    end = end or start + timedelta(days=1)
    read = _inputs(session, settings, now, start, end)
    instants, budget, spend = read.forecast(), read.budget, read.spend
    windows: dict[datetime, list[Instant]] = {}
    for instant in instants:
        if start <= instant.at <= end:
            key = rules.window_of(instant.at, start, budget.window)
            windows.setdefault(key, []).append(instant)
    shaped = []
    for key, found in windows.items():
        starts = sum(i.due for i in found)
        shaped.append(
            Window(
                key,
                key + timedelta(seconds=budget.window),
                starts,
                round(starts * spend.per_start, 1),
                budget.calls,
                sum(i.late for i in found),
                sum(i.missed for i in found),
                tuple(rules.at_risk(found)),
            )
        )
    shaped.sort(key=lambda w: (not w.at_risk, -w.missed, -w.late, w.start))
    return Report(start, end, budget, spend, tuple(shaped))


def stamp(at: datetime) -> str:
    """An instant as RFC 3339 UTC with milliseconds."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
