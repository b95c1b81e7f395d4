"""The worker's metrics under Celery's prefork pool: one server per worker, counts equal to
what the database says, and a killed pool child loses no count.

A real `celery worker --pool prefork --concurrency 2` with LIVESTREAMS_METRICS_PORT, a beat
and the fake API on PostgreSQL + Redis; the page is parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from models import ScheduledStream, StreamState
from models.db import get_sessionmaker
from tests.pipeline import Pipeline, pipeline_for
from tests.processes import free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

FIRST, SECOND = 12, 12  # bookings before and after a pool child is killed


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    port = free_port()
    env = {"LIVESTREAMS_METRICS_PORT": str(port), "LIVESTREAMS_METRICS_DIR": str(tmp_path)}
    with pipeline_for("postgresql", tmp_path, env=env) as p:
        yield p


def scrape(
    pipeline: Pipeline, port: str | int | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    port = port or pipeline.env["LIVESTREAMS_METRICS_PORT"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def started_in_db(pipeline: Pipeline) -> int:
    with get_sessionmaker(pipeline.settings.database_url)() as s:
        live = [StreamState.STARTED.value, StreamState.LIVE.value, StreamState.ENDED.value]
        return int(s.scalar(select(func.count()).where(ScheduledStream.state.in_(live))) or 0)


def pool_children(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry))
    return children


def book_and_wait(pipeline: Pipeline, count: int, total: int) -> None:
    for i in range(count):
        pipeline.book(2.0 + i * 0.05)
    wait_until(lambda: started_in_db(pipeline) == total, 60, f"{total} bookings started")


def test_counts_across_pool_children_equal_the_database_even_after_a_child_is_killed(
    pipeline: Pipeline,
) -> None:
    book_and_wait(pipeline, FIRST, FIRST)
    worker = pipeline.celery.procs["worker-1"]
    children = pool_children(worker.pid)
    assert len(children) == 2, children  # --concurrency 2: the pool's two children
    os.kill(children[0], signal.SIGKILL)  # its files stay: its counts must not vanish
    wait_until(lambda: len(pool_children(worker.pid)) == 2, 30, "the pool to replace it")
    book_and_wait(pipeline, SECOND, FIRST + SECOND)

    def counted() -> dict:
        got = scrape(pipeline)
        return got if got.get(("livestreams_starts_total", (("outcome", "started"),))) else {}

    got = wait_until(counted, 10, "the metrics page")
    total = FIRST + SECOND
    assert started_in_db(pipeline) == total
    assert got[("livestreams_starts_total", (("outcome", "started"),))] == total
    assert got[("livestreams_start_lateness_seconds_count", ())] == total
    start_201 = ("livestreams_provider_requests_total", (("operation", "start"), ("status", "201")))
    assert got[start_201] == total
    assert got[("livestreams_dispatch_claimed_total", ())] == total
    assert got[("livestreams_dispatch_tick_duration_seconds_count", ())] >= 5
    # Counted in the children, served by the worker's main process alone.
    assert len(pool_children(worker.pid)) == 2
    # And the state, as `livestreams serve` reads it from the database.
    serve_port = free_port()
    pipeline.celery.serve("serve", serve_port)
    state = scrape(pipeline, serve_port)
    assert state[("livestreams_bookings", (("state", "started"),))] == total
    assert state[("livestreams_overdue_bookings", ())] == 0
    assert state[("livestreams_last_dispatch_tick_age_seconds", ())] < 30
