"""What the overview reads for its charts and its processes, all from stored rows: calls to
the API per bucket (starts, failures, 429s, status checks), webhook deliveries per bucket, the
lateness of recent starts, the rate budget and any pause, and every process's heartbeat.

Each read is one grouped query over an index range (ix_start_attempts_sent_at,
ix_webhook_attempts_sent_at, ix_scheduled_streams_started_at) that returns a row per bucket,
never a row per call: the page runs them on every refresh (benchmarks/ops_page.py measures
them on a million bookings).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, case, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from models import (
    DispatcherHeartbeat,
    ScheduledStream,
    StartAttempt,
    StreamState,
    UpstreamPause,
    WebhookAttempt,
    WorkerHeartbeat,
)
from worker.http.pages import charts
from worker.http.pages.charts import LATENESS_EDGES, Window
from worker.settings import Settings
from worker.upstream.attempts import calls_since

A = StartAttempt
S = ScheduledStream
SERIES = ("starts", "failures", "pauses", "checks", "deliveries")


@dataclass(frozen=True)
class Activity:
    series: dict[str, list[int]]  # SERIES -> one count per bucket of the window
    lateness: list[int]  # per LATENESS_EDGES bucket, and one above the last edge
    budget_used: int  # calls in the current rate window
    budget_limit: int
    budget_window: float  # seconds
    paused_until: datetime | None  # the latest pause still running, if any


def read(session: Session, settings: Settings, win: Window, now: datetime) -> Activity:
    dialect = session.get_bind().dialect.name
    n = win.buckets
    series = {name: [0] * n for name in SERIES}
    bucket = _bucket(A.sent_at, win, dialect)
    # Grouped by what the series tell apart, then added up here: a few hundred rows, where
    # conditional sums per call cost PostgreSQL twice the time over a busy hour.
    calls = (
        select(bucket, A.action, A.outcome, A.http_status, func.count())
        .where(A.sent_at >= win.start, A.sent_at < win.end)
        .group_by(bucket, A.action, A.outcome, A.http_status)
    )
    for index, action, outcome, status, count in session.execute(calls):
        if 0 <= index < n:
            for name in charts.call_series(action, outcome, status):
                series[name][index] += int(count)
    W = WebhookAttempt
    sent = _bucket(W.sent_at, win, dialect)
    deliveries = (
        select(sent, func.count()).where(W.sent_at >= win.start, W.sent_at < win.end).group_by(sent)
    )
    for index, count in session.execute(deliveries):
        if 0 <= index < n:
            series["deliveries"][index] = int(count)
    used = calls_since(session, now - timedelta(seconds=settings.upstream.rate_limit.window))
    paused = session.scalar(
        select(func.max(UpstreamPause.paused_until)).where(UpstreamPause.paused_until > now)
    )
    return Activity(
        series=series,
        lateness=_lateness(session, win, dialect),
        budget_used=used,
        budget_limit=settings.upstream.rate_limit.requests,
        budget_window=settings.upstream.rate_limit.window,
        paused_until=paused,
    )


def states_between(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """Bookings due (booked to start) from ``start`` to ``end``, per state: a range of
    ix_scheduled_streams_scheduled_at, not every booking ever made."""
    counts = {state.value: 0 for state in StreamState}
    query = (
        select(S.state, func.count())
        .where(S.scheduled_at >= start, S.scheduled_at < end)
        .group_by(S.state)
    )
    for state, count in session.execute(query):
        counts[state] = int(count)
    return counts


def live_now(session: Session) -> int:
    """Bookings whose livestream is live (ix_scheduled_streams_state_due_at, one state)."""
    return session.scalar(select(func.count()).where(S.state == StreamState.LIVE.value)) or 0


def _lateness(session: Session, win: Window, dialect: str) -> list[int]:
    """Starts recorded in the window, by how long after the booked instant (started_at, as
    `livestreams show` reports a booking's lateness)."""
    late = _epoch(S.started_at, dialect) - _epoch(S.scheduled_at, dialect)
    which = case(
        *((late <= edge, i) for i, edge in enumerate(LATENESS_EDGES)), else_=len(LATENESS_EDGES)
    )
    query = (
        select(which, func.count())
        .where(S.started_at >= win.start, S.started_at < win.end)
        .group_by(which)
    )
    counts = [0] * (len(LATENESS_EDGES) + 1)
    for index, count in session.execute(query):
        counts[int(index)] = int(count)
    return counts


def _epoch(column: Any, dialect: str) -> ColumnElement[Any]:
    """Seconds since the epoch of a stored instant: PostgreSQL's timestamptz, or SQLite's
    naive UTC text (worker's UTCDateTime)."""
    if dialect == "postgresql":
        # date_part, not EXTRACT: EXTRACT returns numeric since PostgreSQL 14, whose
        # arithmetic costs several times more over the 100,000 rows of a busy hour.
        return func.date_part("epoch", column)
    return (func.julianday(column) - 2440587.5) * 86400.0


def _bucket(column: Any, win: Window, dialect: str) -> ColumnElement[int]:
    offset = (_epoch(column, dialect) - win.start.timestamp()) / win.step.total_seconds()
    # Never negative (the query keeps rows at or after the start): truncation is the floor.
    return cast(func.floor(offset) if dialect == "postgresql" else offset, Integer)


@dataclass(frozen=True)
class Process:
    kind: str  # "worker" or "beat" (a row whose lane is "beat"), "dispatcher"
    name: str  # host and pid, or the dispatcher's name
    lane: str
    doing: str
    beat_at: datetime
    dead: bool


def processes(session: Session, settings: Settings, now: datetime) -> list[Process]:
    """Every process with a heartbeat row, newest beat first, and the dispatcher's last tick;
    one silent for longer than the owner timeout (the dispatcher: the stale limit) is dead."""
    dead_after = timedelta(seconds=settings.claims.owner_timeout)
    rows = session.scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.beat_at.desc()))
    found = [
        Process(
            kind="beat" if row.lane == "beat" else "worker",
            name=f"{row.hostname} pid {row.pid}",
            lane=row.lane or "",
            doing=row.doing or "",
            beat_at=row.beat_at,
            dead=now - row.beat_at > dead_after,
        )
        for row in rows
    ]
    ticks = session.scalars(select(DispatcherHeartbeat).order_by(DispatcherHeartbeat.name))
    stale = timedelta(seconds=settings.claims.stale_after)
    found += [
        Process(
            kind="dispatcher",
            name=tick.name,
            lane="livestreams.dispatch",
            doing=f"last tick claimed {tick.claimed}, reaped {tick.reaped}",
            beat_at=tick.last_tick_at,
            dead=now - tick.last_tick_at > stale,
        )
        for tick in ticks
    ]
    return found
