"""Case api: requests per second of `livestreams serve --workers 2` on PostgreSQL.

Three requests, each sent by CLIENTS threads on keep-alive connections for a fixed time: book
(POST /v1/bookings), list (GET /v1/bookings, a page of 100 filtered by state and start time)
and /healthz of the same app, which touches neither the database nor the keys: the ceiling of
this server and this client together, so that the other two read as a share of it. Measured
with 1,000 and with 1,000,000 bookings stored (the dispatch case's schemas, loaded once a run).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from benchmarks.data import clear_all_but_bulk
from benchmarks.dispatch import sizes, stored_rows, tag
from benchmarks.procs import Celery
from benchmarks.report import Figure, figure, log, ratio
from benchmarks.services import Bench, sync_url
from models.db import get_sessionmaker
from worker.dev.processes import free_port
from worker.http import apikeys

CASE = "api"
WORKERS = 2
CLIENTS = 8
PAGE = 100

Send = Callable[[httpx.Client, str], httpx.Response]


def _seconds(bench: Bench) -> float:
    return 3.0 if bench.quick else 10.0


def _rate(base: str, send: Send, expect: int, seconds: float) -> tuple[float, int]:
    """(answers ``expect`` per second, other answers) of CLIENTS threads for ``seconds``."""
    good, bad = [0] * CLIENTS, [0] * CLIENTS
    stop = time.monotonic() + seconds

    def loop(i: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            n = 0
            while time.monotonic() < stop:
                n += 1
                if send(client, f"{i}-{n}").status_code == expect:
                    good[i] += 1
                else:
                    bad[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(good) / (time.monotonic() - started), sum(bad)


def _requests(key: str) -> dict[str, tuple[Send, int]]:
    auth = {"Authorization": f"Bearer {key}"}
    at = (datetime.now(UTC) + timedelta(days=30)).isoformat()  # past every bulk row
    middle = (datetime.now(UTC) + timedelta(days=1, minutes=5)).isoformat()
    book = {"at": at, "width": 1280, "height": 720}
    page = {"state": "scheduled", "from": middle, "limit": str(PAGE)}
    return {
        "create": (
            lambda c, n: c.post(
                "/v1/bookings",
                json={**book, "meeting_id": str(uuid.uuid4()), "name": f"api-{n}"},
                headers=auth,
            ),
            201,
        ),
        "list": (lambda c, n: c.get("/v1/bookings", params=page, headers=auth), 200),
        "healthz": (lambda c, n: c.get("/healthz"), 200),
    }


def _measure(bench: Bench, url: str) -> dict[str, tuple[float, int]]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    with get_sessionmaker(url).begin() as session:
        _, key = apikeys.create(session, name=name, scopes=apikeys.SCOPES)
    port = free_port()
    out = {}
    with Celery(bench, {"LIVESTREAMS_DATABASE_URL": url}) as procs:
        procs.serve("serve", port, workers=WORKERS)
        base = f"http://127.0.0.1:{port}"
        requests = _requests(key)
        _rate(base, *requests["healthz"], 1.0)  # warm up: connections, imports, pools
        for what, (send, expect) in requests.items():
            out[what] = _rate(base, send, expect, _seconds(bench))
    with psycopg.connect(sync_url(url), autocommit=True) as conn:
        conn.execute("DELETE FROM api_keys WHERE name = %s", (name,))
    clear_all_but_bulk(url)
    return out


def run(bench: Bench) -> list[Figure]:
    urls = stored_rows(bench)
    figs: list[Figure] = []
    note = (
        f"serve --workers {WORKERS}; {CLIENTS} client threads, keep-alive, "
        f"{_seconds(bench):g} s each; list = a page of {PAGE}, state and from filters"
    )
    for rows in sizes(bench):
        log(f"{CASE}: {rows:,} bookings stored")
        found = _measure(bench, urls[rows])
        for what, (per_second, bad) in found.items():
            figs.append(figure(CASE, f"{what}_rps_{tag(rows)}", per_second, "req/s", note=note))
            figs.append(figure(CASE, f"{what}_unexpected_{tag(rows)}", bad, "answers", at_most=0))
            note = None
        ceiling = found["healthz"][0]
        for what in ("create", "list"):
            share = ratio(found[what][0], ceiling)
            figs.append(figure(CASE, f"{what}_of_healthz_{tag(rows)}", share, "x"))
    return figs
