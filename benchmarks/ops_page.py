"""Case ops: the ops page's overview (with its charts) and its search, on PostgreSQL holding
1,000,000 bookings and 100,000 calls to the API in the last hour.

The rows are loaded in SQL (INSERT ... SELECT generate_series, then ANALYZE): 980,000
bookings over the last and the next 30 days, and 20,000 booked in the last hour, each with a
start call and four status checks (a few refused, a few answered 429) and one delivered
webhook. `livestreams serve` then answers, signed in as a browser would be: the overview for
the last hour and for the last 24 hours, and the search by each kind of id and by a prefix.
Each request is timed REPS times from the client; the figure is the median, the goals
300 ms (overview) and 100 ms (each search).
"""

from __future__ import annotations

import re
import statistics
import time
import uuid

import httpx
import psycopg

from benchmarks.procs import Celery
from benchmarks.report import Figure, figure, log
from benchmarks.services import Bench, sync_url
from models.db import get_sessionmaker
from worker.dev.processes import free_port
from worker.http import apikeys

CASE = "ops"
BOOKINGS = 1_000_000
RECENT = 20_000  # of them booked in the last hour: 5 calls each, 100,000 calls
CHECKS = 4

LOAD_SQL = [
    # The bulk: spread over 60 days around now, the past ones ended (1 in 50 failed).
    """
    INSERT INTO scheduled_streams (id, external_ref, account_id, app_id, meeting_id, name,
        video_width, video_height, scheduled_at, timezone, start_deadline, start_window, due_at,
        created_at, updated_at, state, attempts, livestream_id, started_at)
    SELECT gen_random_uuid(), 'evt-' || lpad(g::text, 7, '0'), 'bench-account', 'bench-app',
        gen_random_uuid(), 'stream-' || g, 1280, 720, t, 'UTC', t + interval '900 seconds', 900,
        t, t - interval '1 day', t,
        CASE WHEN t > now() THEN 'scheduled' WHEN g %% 50 = 0 THEN 'failed' ELSE 'ended' END,
        CASE WHEN t > now() THEN 0 ELSE 1 END,
        CASE WHEN t <= now() AND g %% 50 <> 0 THEN 'ls-' || md5(g::text) END,
        CASE WHEN t <= now() AND g %% 50 <> 0 THEN t + random() * interval '0.2 seconds' END
    FROM (SELECT g, now() - interval '30 days' + g * (interval '60 days' / %(bulk)s::int)
          AS t FROM generate_series(1, %(bulk)s::int) AS g) AS s
    """,
    # The last hour: started (live), one every 0.18 s.
    """
    INSERT INTO scheduled_streams (id, external_ref, account_id, app_id, meeting_id, name,
        video_width, video_height, scheduled_at, timezone, start_deadline, start_window, due_at,
        created_at, updated_at, state, attempts, livestream_id, started_at, live_at)
    SELECT gen_random_uuid(), 'hour-' || lpad(g::text, 6, '0'), 'bench-account', 'bench-app',
        gen_random_uuid(), 'hour-' || g, 1280, 720, t, 'UTC', t + interval '900 seconds', 900,
        t + interval '5 minutes', t - interval '1 day', t, 'live', 1 + %(checks)s::int,
        'ls-hour-' || g, t + random() * interval '0.3 seconds', t + interval '3 seconds'
    FROM (SELECT g, now() - interval '1 hour' + g * (interval '1 hour' / (%(recent)s::int + 1))
          AS t FROM generate_series(1, %(recent)s::int) AS g) AS s
    """,
    # Their calls: a start each (1 in 100 refused, 1 in 200 answered 429), then checks.
    """
    INSERT INTO start_attempts (stream_id, number, action, sent_at, finished_at, outcome,
        http_status, duration)
    SELECT id, 1, 'start', scheduled_at, scheduled_at + interval '0.1 seconds',
        CASE WHEN n %% 100 = 0 THEN 'fatal' WHEN n %% 200 = 1 THEN 'retryable' ELSE 'started'
        END,
        CASE WHEN n %% 100 = 0 THEN 422 WHEN n %% 200 = 1 THEN 429 ELSE 201 END, 0.1
    FROM (SELECT id, scheduled_at, row_number() OVER () AS n FROM scheduled_streams
          WHERE external_ref LIKE 'hour-%%') AS h
    """,
    """
    INSERT INTO start_attempts (stream_id, number, action, sent_at, finished_at, outcome,
        http_status, duration)
    SELECT id, 1 + c, 'status', least(scheduled_at + c * interval '10 seconds', now()),
        least(scheduled_at + c * interval '10 seconds', now()), 'observed', 200, 0.05
    FROM scheduled_streams, generate_series(1, %(checks)s::int) AS c
    WHERE external_ref LIKE 'hour-%%'
    """,
    # One delivered webhook each, to one endpoint.
    """
    INSERT INTO webhook_endpoints (id, url, event_types, secret_ciphertext, enabled, created_at,
        updated_at, failures_in_a_row)
    VALUES ('00000000-0000-4000-8000-000000000001', 'https://platform.example/hooks',
        'booking.started', 'not-a-secret', true, now(), now(), 0)
    """,
    """
    INSERT INTO webhook_events (id, type, stream_id, payload, created_at)
    SELECT gen_random_uuid(), 'booking.started', id, '{}', started_at
    FROM scheduled_streams WHERE external_ref LIKE 'hour-%%'
    """,
    """
    INSERT INTO webhook_deliveries (id, event_id, endpoint_id, state, attempts, due_at,
        created_at, updated_at, delivered_at, last_status)
    SELECT gen_random_uuid(), id, '00000000-0000-4000-8000-000000000001', 'delivered', 1,
        created_at, created_at, created_at, created_at, 200
    FROM webhook_events
    """,
    """
    INSERT INTO webhook_attempts (delivery_id, number, sent_at, finished_at, status, duration)
    SELECT id, 1, created_at, created_at, 200, 0.03 FROM webhook_deliveries
    """,
    "ANALYZE",
]


def _reps(bench: Bench) -> int:
    return 5 if bench.quick else 20


def load(url: str) -> float:
    """The rows above, in a schema of their own (loaded once a run). Returns the seconds."""
    started = time.monotonic()
    with psycopg.connect(sync_url(url), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM scheduled_streams").fetchone()
        if row is not None and row[0] >= BOOKINGS:
            return 0.0
        sizes = {"bulk": BOOKINGS - RECENT, "recent": RECENT, "checks": CHECKS}
        for statement in LOAD_SQL:
            conn.execute(statement, sizes)  # type: ignore[arg-type]
    return time.monotonic() - started


def _samples(conn: psycopg.Connection) -> dict[str, str]:
    """One of each kind of thing a person types into the search box."""
    row = conn.execute(
        "SELECT id, livestream_id, meeting_id, external_ref FROM scheduled_streams"
        " WHERE external_ref = 'evt-0400001'"
    ).fetchone()
    assert row is not None
    stream_id, livestream, meeting, ref = row
    return {
        "booking_id": str(stream_id),
        "livestream_id": livestream,
        "meeting_id": str(meeting),
        "ref": ref,
        "ref_prefix": "EVT-049999",  # 10 refs, in another case
        "name_prefix": "hour-1999",  # 11 names
        "nothing": "no-such-booking",
    }


def _signed_in(base: str, key: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    form = client.get("/ops/sign-in", params={"next": "/ops"})
    csrf = re.search(r'name="csrf" value="([^"]*)"', form.text)
    assert csrf, "no CSRF field on the sign-in page"
    answer = client.post("/ops/sign-in", data={"api_key": key, "csrf": csrf[1], "next": "/ops"})
    assert answer.status_code == 303, answer.text
    return client


def _median_ms(client: httpx.Client, path: str, reps: int, expect: str) -> float:
    times = []
    for _ in range(reps):
        began = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200 and expect in answer.text, (path, answer.status_code)
    return statistics.median(times)


def run(bench: Bench) -> list[Figure]:
    url = bench.schema("ops_1m")
    seconds = load(url)
    log(f"{CASE}: {BOOKINGS:,} bookings and their calls loaded ({seconds:.1f} s)")
    name = f"bench-{uuid.uuid4().hex[:8]}"
    with get_sessionmaker(url).begin() as session:
        _, key = apikeys.create(session, name=name, scopes=[apikeys.OPS])
    with psycopg.connect(sync_url(url), autocommit=True) as conn:
        samples = _samples(conn)
    reps = _reps(bench)
    figs: list[Figure] = [figure(CASE, "load_seconds", seconds, "s", note="0: loaded before")]
    port = free_port()
    with Celery(bench, {"LIVESTREAMS_DATABASE_URL": url}) as procs:
        procs.serve("serve", port)
        client = _signed_in(f"http://127.0.0.1:{port}", key)
        try:
            _median_ms(client, "/ops", 2, "rate budget used")  # warm up: pools, templates
            note = f"median of {reps}, from the client; serve --workers 1"
            for range_key in ("1h", "24h"):
                ms = _median_ms(client, f"/ops?range={range_key}", reps, 'data-series="starts"')
                figs.append(
                    figure(CASE, f"overview_{range_key}_ms", ms, "ms", at_most=300, note=note)
                )
                note = None
            for kind, text in samples.items():
                expect = "No bookings." if kind == "nothing" else "/ops/bookings/"
                ms = _median_ms(client, f"/ops/bookings?q={text}", reps, expect)
                figs.append(figure(CASE, f"search_{kind}_ms", ms, "ms", at_most=100))
        finally:
            client.close()
    with psycopg.connect(sync_url(url), autocommit=True) as conn:
        conn.execute("DELETE FROM api_keys WHERE name = %s", (name,))
    return figs
