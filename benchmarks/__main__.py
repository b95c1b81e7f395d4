"""``python -m benchmarks [--quick] [--case NAME ...]``: run cases, print figures and a table."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import deps


def main(argv: list[str] | None = None) -> int:
    deps.ensure()  # before the cases import what it installs
    from benchmarks.noise import Noise
    from benchmarks.report import Figure, figure, log, table
    from benchmarks.services import Bench, bench

    # Each case's module is imported when it runs: a case can then be run against an older
    # checkout of the product that lacks what another case needs (copy benchmarks/ into it).
    cases: dict[str, str] = {
        "lateness": "lateness:run",
        "stall": "stall:run",
        "burst": "burst:run",
        "chaos": "chaos:run",
        "dispatch": "dispatch:run",
        "memory": "memory:run",
        "alt-lateness": "alternative:run_lateness",
        "alt-dispatch": "alternative:run_dispatch",
        "api": "api:run",
        "tracking": "tracking:run",
        "metrics": "metrics_cost:run",
        "webhooks": "webhooks:run",
        "ops": "ops_page:run",
    }

    def case(name: str) -> Callable[[Bench], list[Figure]]:
        module, function = cases[name].split(":")
        found: Callable[[Bench], list[Figure]] = getattr(
            importlib.import_module(f"benchmarks.{module}"), function
        )
        return found

    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument(
        "--case", action="append", choices=list(cases), help="run only this case (repeatable)"
    )
    parser.add_argument("--logs", type=Path, help="keep the celery logs in this folder")
    args = parser.parse_args(argv)
    chosen = args.case or list(cases)
    figures: list[Figure] = []
    started = time.monotonic()
    with bench(args.quick, args.logs) as run:
        for name in chosen:
            log(f"case {name}")
            noise = Noise(run.database_name)
            with noise.measuring():
                found = case(name)(run)
            run.results.setdefault(name, found)
            figures.extend(found)
            figures.append(
                figure(
                    name,
                    "other_cpu_share",
                    noise.share,
                    "of machine",
                    note="CPU other processes took during the case",
                )
            )
            if noise.share > 0.1:
                log(f"{name}: other processes took {noise.share:.0%} of the CPU; re-run when quiet")
    print()
    print(table(figures))
    log(f"{len(chosen)} case(s) in {time.monotonic() - started:.0f} s on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
