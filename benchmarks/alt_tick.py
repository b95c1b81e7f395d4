"""Run in its own process by the alt-dispatch case: the cost of sqlalchemy-celery-beat's
DatabaseScheduler with the entries already stored, and the peak memory that takes.

Prints one JSON object. ``load_s``: building the schedule from the database, which it does at
start and again on the first tick after any change (every booking, and every one-off run);
``first_tick_ms``: the tick that builds the heap, also repeated after each change;
``steady_tick_ms``: a tick when nothing changed (median); ``statements_per_start``: SQL
statements for one due entry sent, plus the sync that records it (with ``--due N``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

from sqlalchemy import Engine, event

from benchmarks.alt_app import app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--due", type=int, default=0, help="entries due now among those stored")
    parser.add_argument("--steady", type=int, default=3)
    args = parser.parse_args()
    from sqlalchemy_celery_beat.schedulers import DatabaseScheduler

    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    started = time.perf_counter()
    scheduler = DatabaseScheduler(app=app)
    out: dict[str, float | None] = {"load_s": time.perf_counter() - started}
    if args.due:
        sent = 0
        original = scheduler.apply_entry

        def apply_entry(entry: object, producer: object = None) -> None:
            nonlocal sent
            sent += 1
            original(entry, producer=producer)

        scheduler.apply_entry = apply_entry  # type: ignore[method-assign]
        event.listen(Engine, "before_cursor_execute", count)
        deadline = time.monotonic() + 60
        while sent < args.due and time.monotonic() < deadline:
            time.sleep(min(scheduler.tick(), 1.0))  # beat sleeps what tick returns
        scheduler.sync()  # what beat does every few minutes and at exit: records the runs
        event.remove(Engine, "before_cursor_execute", count)
        out["sent"] = sent
        out["statements_per_start"] = statements / max(sent, 1)
    else:
        started = time.perf_counter()
        scheduler.tick()
        out["first_tick_ms"] = (time.perf_counter() - started) * 1000
        steady = []
        for _ in range(args.steady):
            started = time.perf_counter()
            scheduler.tick()
            steady.append((time.perf_counter() - started) * 1000)
        out["steady_tick_ms"] = statistics.median(steady)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
