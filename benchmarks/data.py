"""Bookings for the cases: through the product's Python API, or bulk-loaded in SQL."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import psycopg
from sqlalchemy import func, select

from benchmarks.services import Bench, sync_url
from models import ScheduledStream
from models.db import get_sessionmaker
from worker.bookings import booking

# Future rows for the scale cases: due a day or more ahead, so no tick of the run claims one.
BULK_SQL = """
INSERT INTO scheduled_streams (id, account_id, app_id, meeting_id, name, video_width,
    video_height, scheduled_at, timezone, start_deadline, start_window, due_at, created_at,
    updated_at, state, attempts)
SELECT gen_random_uuid(), 'bench-account', 'bench-app', gen_random_uuid(), 'bulk-' || g, 1280,
    720, t, 'UTC', t + interval '900 seconds', 900, t, now(), now(), 'scheduled', 0
FROM (SELECT g, now() + interval '1 day' + g * interval '1 second' AS t
      FROM generate_series(%(first)s::int, %(last)s::int) AS g) AS s
"""

# Rows due now, each for a new meeting, for the in-process dispatch and start measurements.
DUE_SQL = """
INSERT INTO scheduled_streams (id, account_id, app_id, meeting_id, name, video_width,
    video_height, scheduled_at, timezone, start_deadline, start_window, due_at, created_at,
    updated_at, state, attempts)
SELECT gen_random_uuid(), 'bench-account', 'bench-app', gen_random_uuid(), 'due-' || g, 1280,
    720, t, 'UTC', t + interval '900 seconds', 900, t, now(), now(), 'scheduled', 0
FROM (SELECT g, now() - interval '1 second' AS t FROM generate_series(1, %(count)s::int) AS g) s
"""
REARM_SQL = """
UPDATE scheduled_streams SET state = 'scheduled', claim_token = NULL, lease_expires_at = NULL
WHERE name LIKE 'due-%'
"""


def book(bench: Bench, instants: list[datetime], url: str | None = None) -> dict[str, datetime]:
    """One booking per instant, each for a new meeting; returns meeting id -> booked instant."""
    url = url or bench.database_url
    settings = bench.settings_for(url)
    booked: dict[str, datetime] = {}
    with get_sessionmaker(url).begin() as session:
        for i, at in enumerate(instants):
            meeting = str(uuid.uuid4())
            booking.schedule(
                session, settings, meeting_id=meeting, at=at, name=f"bench-{i}",
                width=1280, height=720,
            )  # fmt: skip
            booked[meeting] = at
    return booked


def bulk_future(url: str, total: int) -> float:
    """Top the future rows up to ``total`` with INSERT ... SELECT generate_series, then ANALYZE
    (as autovacuum would soon after such a load). Returns the seconds it took."""
    started = time.monotonic()
    with psycopg.connect(sync_url(url), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM scheduled_streams WHERE name LIKE 'bulk-%'")
        have = row.fetchone()[0]  # type: ignore[index]
        if have < total:
            conn.execute(BULK_SQL, {"first": have + 1, "last": total})
            conn.execute("ANALYZE scheduled_streams")
    return time.monotonic() - started


def clear_all_but_bulk(url: str) -> None:
    """Forget everything a case left in a schema except its bulk-loaded future rows."""
    with psycopg.connect(sync_url(url), autocommit=True) as conn:
        conn.execute(
            "TRUNCATE start_attempts, stream_status_events, provider_webhooks,"
            " dispatcher_heartbeats, upstream_pauses"
        )
        conn.execute("DELETE FROM scheduled_streams WHERE name NOT LIKE 'bulk-%'")


def fresh_due(url: str, count: int) -> None:
    """Replace the due rows with ``count`` new ones (new meetings, never started)."""
    clear_all_but_bulk(url)
    with psycopg.connect(sync_url(url), autocommit=True) as conn:
        conn.execute(DUE_SQL, {"count": count})


def rearm_due(url: str) -> None:
    """Put the due rows back to ``scheduled``, so the next tick claims them again."""
    with psycopg.connect(sync_url(url), autocommit=True) as conn:
        conn.execute(REARM_SQL)


def states(url: str, meetings: list[str]) -> dict[str, int]:
    """How many of these meetings' bookings are in each state."""
    ids = [uuid.UUID(m) for m in meetings]
    with get_sessionmaker(url)() as session:
        rows = session.execute(
            select(ScheduledStream.state, func.count())
            .where(ScheduledStream.meeting_id.in_(ids))
            .group_by(ScheduledStream.state)
        ).all()
    return {state: count for state, count in rows}
