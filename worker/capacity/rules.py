"""The capacity forecast, pure: which instants cannot all start on time on one token's budget.

One API token serves at most its rate budget: ``Budget.calls`` calls in any ``Budget.window``
seconds (the dispatcher's own ceiling, worker.upstream.pacing: the published limit times
``SAFETY``). The forecast plays the dispatcher's rules forward over the starts due per instant:
- a start spends ``Spend.per_start`` calls when it is made (the start call, plus the share of
  retries and key fetches the product's own calls show), counted for a window from then on,
  as ``pacing.budget`` counts a claimed start before its call leaves;
- starts go oldest instant first, as many as the budget has room for; the rest wait for room
  (calls leaving the window) and are late; a start still waiting at its instant plus its
  start window is missed;
- each start's first status checks (``Spend.checks``, ``Spend.check_after`` seconds later)
  take what is left, and only while no start is waiting or due within ``Spend.reach``: the
  tick reserves the budget for starts first (worker.dispatch), so checks delay later work
  but never a start in reach.

No clock and no database: table-tested in tests/unit/test_capacity_rules.py.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Budget:
    calls: int  # calls the dispatcher allows itself per window
    window: float  # seconds


@dataclass(frozen=True)
class Spend:
    """What one start costs in calls, from what the product's calls show."""

    per_start: float = 1.0  # the start call, plus retries and key fetches per start
    checks: float = 0.0  # status checks in the first window after a start
    check_after: float = 2.0  # the first check, this long after the start
    reach: float = 300.0  # checks wait while a start is due within this many seconds


@dataclass(frozen=True)
class Due:
    """``count`` starts due at ``at``, each startable until ``at + window`` seconds."""

    at: datetime
    count: int
    window: float


@dataclass(frozen=True)
class Instant:
    """What the forecast expects for the starts due at one instant."""

    at: datetime
    due: int
    window: float
    on_time: int = 0  # started at the instant
    late: int = 0  # started later, within the start window
    missed: int = 0  # not started within the window
    latest: float = 0.0  # seconds after the instant the last start is made

    @property
    def at_risk(self) -> bool:
        return self.late > 0 or self.missed > 0


@dataclass
class _Waiting:
    index: int
    left: int
    deadline: float


class _Queue:
    """Starts waiting for room, oldest instant first, and their deadlines (a heap): each
    event costs what changes, not the length of the queue."""

    def __init__(self) -> None:
        self.items: deque[_Waiting] = deque()
        self.deadlines: list[tuple[float, int, _Waiting]] = []

    def push(self, waiting: _Waiting) -> None:
        self.items.append(waiting)
        heapq.heappush(self.deadlines, (waiting.deadline, waiting.index, waiting))

    def expire(self, now: float) -> None:
        """Past its deadline a start is missed: it no longer waits."""
        while self.deadlines and self.deadlines[0][0] < now:
            heapq.heappop(self.deadlines)[2].left = 0

    def __bool__(self) -> bool:
        while self.items and self.items[0].left == 0:
            self.items.popleft()
        return bool(self.items)

    def next_deadline(self) -> float | None:
        while self.deadlines and self.deadlines[0][2].left == 0:
            heapq.heappop(self.deadlines)
        return self.deadlines[0][0] if self.deadlines else None


class _Ledger:
    """Calls made, as (instant, calls) in time order, each counted for a window after it."""

    def __init__(self, window: float, spent: Iterable[tuple[float, float]]) -> None:
        self.window = window
        self.entries: deque[tuple[float, float]] = deque(sorted(spent))
        self.total = sum(c for _, c in self.entries)

    def add(self, now: float, calls: float) -> None:
        self.entries.append((now, calls))
        self.total += calls

    def used(self, now: float) -> float:
        while self.entries and self.entries[0][0] + self.window <= now:
            self.total -= self.entries.popleft()[1]
        return self.total

    def next_expiry(self, now: float) -> float | None:
        self.used(now)
        return self.entries[0][0] + self.window if self.entries else None


def forecast(
    due: Iterable[Due], budget: Budget, spend: Spend, *, spent: Iterable[tuple[datetime, int]] = ()
) -> list[Instant]:
    """Per instant (oldest first): how many of its starts are made on time, late or missed.

    ``spent``: calls already made, (when, how many), still counting against the budget.
    """
    # Same instant and window: one group (the query gives one row per booking's due_at).
    merged: dict[tuple[datetime, float], int] = {}
    for d in due:
        if d.count > 0:
            merged[(d.at, d.window)] = merged.get((d.at, d.window), 0) + d.count
    groups = sorted(merged.items())
    if not groups:
        return []
    origin = groups[0][0][0]

    def sec(at: datetime) -> float:
        return (at - origin).total_seconds()

    ledger = _Ledger(budget.window, [(sec(at), float(n)) for at, n in spent])
    results = [Instant(at, n, window) for (at, window), n in groups]
    arrivals = [sec(at) for (at, _), _ in groups]
    waiting = _Queue()
    checks: list[tuple[float, float]] = []  # (due, calls): a heap
    served = {i: [0, 0, 0.0] for i in range(len(groups))}  # on time, late, latest
    nxt, now = 0, arrivals[0]
    cost = max(spend.per_start, 1e-9)
    while nxt < len(groups) or waiting:
        while nxt < len(groups) and arrivals[nxt] <= now:
            (_, window), count = groups[nxt]
            waiting.push(_Waiting(nxt, count, arrivals[nxt] + window))
            nxt += 1
        waiting.expire(now)
        free = budget.calls - ledger.used(now)
        for w in waiting.items:
            if w.left == 0:
                continue
            n = min(w.left, max(0, math.floor(free / cost + 1e-9)))
            if n == 0:
                break
            w.left -= n
            free -= n * cost
            ledger.add(now, n * cost)
            late = now - arrivals[w.index]
            record = served[w.index]
            record[0 if late <= 0 else 1] += n
            record[2] = max(record[2], late)
            if spend.checks > 0:
                heapq.heappush(checks, (now + spend.check_after, n * spend.checks))
        in_reach = nxt < len(groups) and arrivals[nxt] <= now + spend.reach
        while checks and checks[0][0] <= now and not waiting and not in_reach and free > 0:
            when, calls = heapq.heappop(checks)
            taken = min(calls, free)
            ledger.add(now, taken)
            free -= taken
            if calls > taken:
                heapq.heappush(checks, (when, calls - taken))
        now = _next_event(now, nxt, arrivals, waiting, checks, ledger, spend.reach)
        if now == math.inf:
            break
    out = []
    for i, instant in enumerate(results):
        on_time, late, latest = served[i]
        missed = instant.due - int(on_time) - int(late)
        out.append(replace(instant, on_time=int(on_time), late=int(late), missed=missed,
                           latest=float(latest)))  # fmt: skip
    return out


def _next_event(
    now: float,
    nxt: int,
    arrivals: list[float],
    waiting: _Queue,
    checks: list[tuple[float, float]],
    ledger: _Ledger,
    reach: float,
) -> float:
    """The next moment anything can change: an arrival, room in the window for what waits,
    a deadline, or a check coming due while no start is within reach."""
    candidates = []
    if nxt < len(arrivals):
        candidates.append(arrivals[nxt])
    if waiting or checks:
        expiry = ledger.next_expiry(now)
        if expiry is not None:
            candidates.append(expiry)
    deadline = waiting.next_deadline()
    if deadline is not None:
        candidates.append(deadline + 1e-6)
    # A check comes due; while the next start is within reach it waits for that start.
    no_start_near = checks and (nxt >= len(arrivals) or checks[0][0] + reach < arrivals[nxt])
    if no_start_near and not waiting:
        candidates.append(checks[0][0])
    later = [c for c in candidates if c > now]
    if not later:
        return math.inf
    if nxt >= len(arrivals) and not waiting:
        return math.inf  # every start is placed: checks no longer change the forecast
    return min(later)


def at_risk(instants: Iterable[Instant]) -> list[Instant]:
    """The instants not all started on time: the most missed first, then the most late."""
    risky = [i for i in instants if i.at_risk]
    return sorted(risky, key=lambda i: (-i.missed, -i.late, i.at))


def worsened(before: Iterable[Instant], after: Iterable[Instant]) -> list[Instant]:
    """The instants of ``after`` that a booking put (further) at risk: more late or missed
    than ``before`` (the forecast without it)."""
    was = {(i.at, i.window): i for i in before}
    found = []
    for i in after:
        old = was.get((i.at, i.window))
        if i.at_risk and (old is None or i.missed > old.missed or i.late > old.late):
            found.append(i)
    return at_risk(found)


def describe(instant: Instant, budget: Budget, stamp: str) -> str:
    """One line for a person: the instant, how many are due, and what becomes of them."""
    text = (
        f"{stamp}: {instant.due:,} starts due, {instant.on_time:,} fit the token's budget "
        f"({budget.calls:,} calls / {budget.window:g} s) at the instant"
    )
    if instant.late:
        text += f"; {instant.late:,} would start late (up to {instant.latest:g} s)"
    if instant.missed:
        text += (
            f"; {instant.missed:,} would be missed (not started within the "
            f"{instant.window:g} s start window)"
        )
    return text


def window_of(at: datetime, start: datetime, size: float) -> datetime:
    """The start of the ``size``-second window (counted from ``start``) that holds ``at``."""
    steps = math.floor((at - start).total_seconds() / size)
    return start + timedelta(seconds=steps * size)
