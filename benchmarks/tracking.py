"""Case tracking: what following live streams costs in status requests, with and without the
provider's webhooks.

Real beat, worker and `livestreams serve` processes against the fake API, whose streams go LIVE
a second after they start. Product time runs SCALE times faster than the clock for the
live-check intervals (LIVESTREAMS_LIVE_CHECK 300 s -> 30 s, _WITH_WEBHOOKS 1800 s -> 180 s,
LIVESTREAMS_WEBHOOKS_FRESH 600 s -> 60 s); the dispatch tick is not scaled. Each run starts a
batch of streams, lets them go live, then counts the status requests the fake receives for
them over a steady window, as requests per live stream per (product) hour. In the run with
webhooks, the fake sends its signed status webhooks to the serve process, and a new booking
every 20 s keeps them flowing, as a busy application's would.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from benchmarks.data import book, states
from benchmarks.procs import Celery, wait_until
from benchmarks.report import Figure, figure, log
from benchmarks.services import Bench
from worker.dev.processes import free_port

CASE = "tracking"
SCALE = 10.0
ENV = {
    "LIVESTREAMS_LIVE_CHECK": str(300 / SCALE),
    "LIVESTREAMS_LIVE_CHECK_WITH_WEBHOOKS": str(1800 / SCALE),
    "LIVESTREAMS_WEBHOOKS_FRESH": str(600 / SCALE),
}


def size(bench: Bench) -> tuple[int, float]:
    """(streams, seconds of steady window)."""
    return (20, 60.0) if bench.quick else (100, 180.0)


def measure(bench: Bench, webhooks: bool) -> tuple[float, float, int]:
    """(status requests per live stream per product hour in the steady window, status
    requests per stream before it was seen LIVE, streams)."""
    count, window = size(bench)
    bench.reset()
    with Celery(bench, ENV) as celery:
        if webhooks:
            port = free_port()
            celery.serve("serve", port)
            url = f"http://127.0.0.1:{port}/v1/webhooks/realtimekit"
            bench.fake.configure({"live_after": 1.0, "webhooks": {"url": url}})
        else:
            bench.fake.configure({"live_after": 1.0, "webhooks": None})
        celery.worker("worker", pool="prefork", concurrency=2)
        celery.beat("beat")
        start = datetime.now(UTC) + timedelta(seconds=5)
        booked = book(bench, [start + timedelta(seconds=0.05 * i) for i in range(count)])
        meetings = list(booked)

        def live() -> bool:
            return states(bench.database_url, meetings).get("live", 0) == count

        wait_until(live, 60, "every stream to be live", interval=0.5)
        settle = time.time() + 5.0
        time.sleep(5.0)
        until = settle + window
        while time.time() < until:
            if webhooks:  # another application's stream starting: its webhooks keep flowing
                book(bench, [datetime.now(UTC) + timedelta(seconds=2)])
            time.sleep(min(20.0, max(0.0, until - time.time())))
    ours = set(meetings)
    checks = [r for r in bench.fake.requests if r.endpoint == "active" and r.meeting_id in ours]
    steady = [r for r in checks if settle <= r.arrived < until]
    per_hour = len(steady) / count / (window * SCALE / 3600)
    before_live = sum(1 for r in checks if r.arrived < settle) / count
    log(
        f"{CASE}: webhooks {'on' if webhooks else 'off'}: {len(steady)} status requests for "
        f"{count} live streams over {window:g} s ({window * SCALE / 3600:.2f} product hours)"
    )
    return per_hour, before_live, count


def run(bench: Bench) -> list[Figure]:
    figs: list[Figure] = []
    for webhooks in (False, True):
        try:
            per_hour, before, count = measure(bench, webhooks)
        finally:  # the fake keeps its lifecycle across resets: later cases expect none
            bench.fake.configure({"live_after": None, "webhooks": None})
        label = "with_webhooks" if webhooks else "without_webhooks"
        note = f"{count} live streams; live-check intervals scaled 1/{SCALE:g}"
        figs.append(
            figure(CASE, f"checks_per_live_stream_hour_{label}", per_hour, "req", note=note)
        )
        figs.append(figure(CASE, f"checks_until_live_{label}", before, "req/stream"))
    return figs
