"""Case 5, the usual alternative: the lateness and dispatch-cost cases with sqlalchemy-celery-beat
(one one-off clocked entry per booking), next to the product's figures and their ratio.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from benchmarks import dispatch, lateness
from benchmarks.procs import ROOT, Celery
from benchmarks.report import Figure, figure, log, percentile, ratio
from benchmarks.services import ALT_SCHEDULER, ALT_TASK, Bench, sync_url
from worker.dev.processes import isolated_env

LATE, DISPATCH = "alt-lateness", "alt-dispatch"
# Loading a million entries takes the scheduler ~6 GB here; below this much free memory the
# large size is skipped rather than pushing the machine into the OOM killer.
NEEDED_MIB = 10_000

CLOCKED_SQL = """
INSERT INTO celery_clockedschedule (id, clocked_time)
SELECT g, now() + interval '1 day' + g * interval '1 second'
FROM generate_series(%(first)s::int, %(last)s::int) AS g
"""
TASKS_SQL = """
INSERT INTO celery_periodictask (name, task, args, kwargs, headers, one_off, enabled,
    total_run_count, discriminator, schedule_id, description)
SELECT 'start-' || g, %(task)s, json_build_array(gen_random_uuid(), 'bulk-' || g, 1280, 720),
    '{}', '{}', true, true, 0, 'clockedschedule', g, ''
FROM generate_series(%(first)s::int, %(last)s::int) AS g
"""


def _session(url: str):  # type: ignore[no-untyped-def]
    """A session on the scheduler's tables, made as its own SessionManager makes them."""
    from sqlalchemy_celery_beat.session import SessionManager

    manager = SessionManager()
    engine, factory = manager.create_session(url)
    manager.prepare_models(engine)
    return factory()


def _book(url: str, instants: list[datetime]) -> dict[str, datetime]:
    """One one-off clocked entry per booking, through the library's own models."""
    import uuid

    from sqlalchemy_celery_beat.models import ClockedSchedule, PeriodicTask

    booked: dict[str, datetime] = {}
    session = _session(url)
    try:
        for i, at in enumerate(instants):
            meeting = str(uuid.uuid4())
            clocked = ClockedSchedule(clocked_time=at)
            session.add(clocked)
            session.flush()
            args = json.dumps([meeting, f"alt-{i}", 1280, 720])
            session.add(
                PeriodicTask(
                    name=f"start-{meeting}", task=ALT_TASK, args=args, one_off=True,
                    schedule_model=clocked,
                )
            )  # fmt: skip
            booked[meeting] = at
        session.commit()
    finally:
        session.close()
    return booked


def _ours(
    bench: Bench, case: str, run: Callable[[Bench], list[Figure]]
) -> tuple[list[Figure], list[Figure]]:
    """The product's figures of ``case`` from this run, and those measured just now (to show)."""
    if case in bench.results:
        return bench.results[case], []
    log(f"measuring the product's {case} first, to compare")
    bench.results[case] = run(bench)
    return bench.results[case], bench.results[case]


def _value(figures: list[Figure], name: str) -> float | None:
    return next((f.value for f in figures if f.name == name), None)


def _compare(
    case: str, name: str, ours: float | None, theirs: float | None, unit: str
) -> list[Figure]:
    return [
        figure(case, f"{name}_ours", ours, unit),
        figure(case, f"{name}_theirs", theirs, unit),
        figure(case, f"{name}_theirs_over_ours", ratio(theirs, ours), "x"),
    ]


def run_lateness(bench: Bench) -> list[Figure]:
    ours, shown = _ours(bench, "lateness", lambda b: lateness.one_rate(b, 20))
    count, window = lateness.size(bench)
    bench.reset()
    url = bench.schema("alt_lateness", migrate=False)
    _session(url).close()  # the scheduler's tables, before anything books
    with Celery(bench, {"LIVESTREAMS_DATABASE_URL": url}) as celery:
        app = "benchmarks.alt_app"
        celery.worker("alt-worker", pool=lateness.POOL, concurrency=lateness.CONCURRENCY, app=app)
        # Booked before beat starts: entries written between the scheduler's first read and
        # its first change check are never loaded (its baseline is taken at that check).
        booked = _book(url, lateness.spread(count, window, lateness.LEAD))
        celery.beat("alt-beat", "-S", ALT_SCHEDULER, app=app)
        if time.time() > min(booked.values()).timestamp():
            log(f"{LATE}: beat was ready only after the first instant; lateness is pessimistic")
        log(f"{LATE}: booked {count} one-off entries over {window:g} s; waiting for them")
        last = max(booked.values()).timestamp()
        while time.time() < last + 15 and _started(bench, booked) < count:
            celery.check_alive()
            time.sleep(0.5)
    late = lateness.lateness_ms(bench, booked)
    if len(late) < count:
        log(f"{LATE}: only {len(late)} of {count} one-off entries reached the API")
    note = f"sqlalchemy-celery-beat, {count} one-off clocked entries, same worker settings"
    figs = [*shown, figure(LATE, "alt_started", len(late), "bookings", at_least=count, note=note)]
    for name, p in (("lateness_p50", 50), ("lateness_p99", 99), ("lateness_max", 100)):
        figs += _compare(LATE, name, _value(ours, name), percentile(late, p), "ms")
    return figs


def _started(bench: Bench, booked: dict[str, datetime]) -> int:
    return sum(1 for m in bench.fake.created if m in booked)


def _load(url: str, total: int) -> None:
    _session(url).close()
    with psycopg.connect(sync_url(url), autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM celery_periodictask").fetchone()[0]  # type: ignore[index]
        if have < total:
            conn.execute(CLOCKED_SQL, {"first": have + 1, "last": total})
            conn.execute(TASKS_SQL, {"first": have + 1, "last": total, "task": ALT_TASK})
            conn.execute("ANALYZE")


def _alt_tick(bench: Bench, url: str, *args: str) -> dict[str, float]:
    env = isolated_env({**bench.env, "LIVESTREAMS_DATABASE_URL": url})
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.alt_tick", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"alt_tick failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _free_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_dispatch(bench: Bench) -> list[Figure]:
    ours, shown = _ours(bench, "dispatch", dispatch.run)
    small, large = dispatch.sizes(bench)
    if large > 100_000 and _free_mib() < NEEDED_MIB:
        log(f"{DISPATCH}: under {NEEDED_MIB} MiB free; the large size is cut to 100,000 entries")
        large = 100_000
    measured: dict[int, dict[str, float]] = {}
    for rows in (small, large):
        url = bench.schema(f"alt_{dispatch.tag(rows)}", migrate=False)
        started = time.monotonic()
        _load(url, rows)
        log(f"{DISPATCH}: {rows:,} one-off entries stored ({time.monotonic() - started:.1f} s);"
            " starting the scheduler on them")  # fmt: skip
        measured[rows] = _alt_tick(bench, url)
        log(f"{DISPATCH}: {rows:,} entries: {measured[rows]}")
    counted = _alt_tick(bench, _due_schema(bench), "--due", str(dispatch.DUE))
    if counted.get("sent") != dispatch.DUE:
        log(f"{DISPATCH}: the scheduler sent {counted.get('sent')} of {dispatch.DUE} due entries")
    bench.reset()  # the sent one-off messages wait in the broker for nobody
    tag_s, tag_l = dispatch.tag(small), dispatch.tag(large)
    s, big = measured[small], measured[large]
    figs = shown + _compare(
        DISPATCH,
        f"tick_idle_{tag_l}",
        _value(ours, f"tick_idle_{tag_l}"),
        big["steady_tick_ms"],
        "ms",
    )
    figs += _compare(
        DISPATCH,
        "tick_idle_ratio", _value(ours, "tick_idle_ratio"),
        ratio(big["steady_tick_ms"], s["steady_tick_ms"]), "x",
    )  # fmt: skip
    change_s = (s["load_s"] + s["first_tick_ms"] / 1000) * 1000
    change_l = (big["load_s"] + big["first_tick_ms"] / 1000) * 1000
    note = "schedule reload + heap rebuild: at start and on the first tick after any change"
    figs += [
        figure(DISPATCH, f"tick_after_change_{tag_s}_theirs", change_s, "ms", note=note),
        figure(DISPATCH, f"tick_after_change_{tag_l}_theirs", change_l, "ms"),
        figure(DISPATCH, f"beat_peak_rss_{tag_s}_theirs", s["peak_rss_mib"], "MiB"),
        figure(DISPATCH, f"beat_peak_rss_{tag_l}_theirs", big["peak_rss_mib"], "MiB"),
        figure(DISPATCH, f"beat_peak_rss_{tag_l}_ours", _ours_rss(bench, "beat", tag_l), "MiB",
               note="the product's beat holds no schedule; its dispatch runs in the worker"),
        figure(DISPATCH, f"worker_peak_rss_{tag_l}_ours", _ours_rss(bench, "worker", tag_l),
               "MiB"),
    ]  # fmt: skip
    figs += _compare(
        DISPATCH,
        "statements_per_started_stream", _value(ours, "statements_per_started_stream"),
        counted.get("statements_per_start"), "statements",
    )  # fmt: skip
    return figs


def _due_schema(bench: Bench) -> str:
    """A schema with DUE entries due now, for counting statements per start."""
    url = bench.schema("alt_due", migrate=False)
    _session(url).close()
    with psycopg.connect(sync_url(url), autocommit=True) as conn:
        conn.execute("TRUNCATE celery_periodictask, celery_clockedschedule")
    now = datetime.now(UTC) - timedelta(seconds=1)
    _book(url, [now] * dispatch.DUE)
    return url


def _ours_rss(bench: Bench, process: str, tag: str) -> float | None:
    """From the memory case of this run, when it ran."""
    memory = bench.results.get("memory")
    return _value(memory, f"{process}_peak_rss_{tag}_rows") if memory else None
