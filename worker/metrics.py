"""Worker metrics for Prometheus, correct under Celery's prefork pool.

With ``LIVESTREAMS_METRICS_PORT`` set, a worker runs prometheus_client in multiprocess mode:
every process (the main one and each pool child) writes its values to files in a folder of the
worker's own, and only the main process serves them, summed over every process that ever
wrote, on that port. One server per worker, not one per child: a scrape of a child's own
server would see that child's share only (PostHog#56109 measured 10-25x undercounts). The
folder is emptied when the worker starts; a child that exits is marked dead (its live gauges
go, its counters stay counted), and a child that is killed keeps its files, so no count is
lost with it (prometheus_client's "Multiprocess Mode" docs).

The folder must be named before prometheus_client is imported: worker.metricsdir does that at
the top of worker.celery, before anything imports this module. Without the port the metrics are
ordinary in-process ones that nobody serves: counting costs the same either way.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
    start_http_server,
)

from worker.settings import multiprocess_dir_is_set

# Buckets in seconds: a start leaves within milliseconds of its instant when all is well, and
# within a lease when a worker died; a call takes milliseconds up to its bound.
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
TICK_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


STARTS = Counter("livestreams_starts", "Start runs, by what they came to", ["outcome"])
START_LATENESS = Histogram(
    "livestreams_start_lateness_seconds",
    "From the booked instant to the first start request leaving",
    buckets=LATENESS_BUCKETS,
)
PROVIDER_REQUESTS = Counter(
    "livestreams_provider_requests",
    "Calls to the RealtimeKit API, by operation and HTTP status (error: no answer)",
    ["operation", "status"],
)
PROVIDER_DURATION = Histogram(
    "livestreams_provider_request_duration_seconds",
    "How long each call to the RealtimeKit API took",
    ["operation"],
    buckets=CALL_BUCKETS,
)
RECONCILES = Counter(
    "livestreams_reconciles", "Reconciles of an unclear start, by result", ["result"]
)
RATE_LIMIT_PAUSES = Counter(
    "livestreams_rate_limit_pauses", "Times a 429 paused every call of the API token"
)
TICK_DURATION = Histogram(
    "livestreams_dispatch_tick_duration_seconds", "How long a dispatch tick took",
    buckets=TICK_BUCKETS,
)  # fmt: skip
CLAIMED = Counter("livestreams_dispatch_claimed", "Bookings claimed for a start by the ticks")
REAPED = Counter("livestreams_dispatch_reaped", "Claims taken back from runs that vanished")
TRACK_RUNS = Counter(
    "livestreams_track_runs",
    "Track runs (status checks of started and live streams, and their stops), by result",
    ["result"],
)

WEBHOOK_DELIVERIES = Counter(
    "livestreams_webhook_deliveries",
    "Outbound webhook delivery runs, by result (delivered, retrying, failed, disabled, ...)",
    ["result"],
)


def serve(port: int, folder: Path) -> None:
    """In the worker's main process: serve the sum over every process's files on ``port``
    (worker.metricsdir made the folder, empty, when the worker started)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    start_http_server(port, registry=registry)


def process_exited(pid: int) -> None:
    """A pool child is exiting: drop its live gauges (counters and histograms stay summed)."""
    if multiprocess_dir_is_set():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
