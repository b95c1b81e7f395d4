"""Celery processes for a benchmark run, and the memory and CPU they use.

The spawn-wait-stop harness is :mod:`worker.dev.processes`, shared with the demo and the tests;
here it is bound to a run's settings and folder, beside the measuring that only benchmarks do.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from benchmarks.services import Bench
from worker.dev.processes import CeleryProcesses, isolated_env, wait_until

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")

__all__ = ["ROOT", "Celery", "PeakRSS", "cpu_snapshot", "tree_rss_mib", "wait_until"]


class Celery(CeleryProcesses):
    """Celery processes with the run's settings (plus ``extra_env``), from the checkout root,
    logging to the run's folder; every one is stopped on leaving the block."""

    def __init__(self, bench: Bench, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(isolated_env({**bench.env, **(extra_env or {})}), bench.workdir, cwd=ROOT)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB."""
    tree, total, todo = _children(), 0, [pid]
    while todo:
        current = todo.pop()
        total += _rss_kib(current)
        todo.extend(tree.get(current, []))
    return total / 1024


class PeakRSS:
    """Samples the RSS of process trees every ``interval`` seconds; keeps each one's peak."""

    def __init__(self, pids: dict[str, int], interval: float = 0.2) -> None:
        self.pids = pids
        self.interval = interval
        self.peak = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        for name, pid in self.pids.items():
            self.peak[name] = max(self.peak[name], tree_rss_mib(pid))

    @contextlib.contextmanager
    def running(self) -> Iterator[PeakRSS]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()
            self.sample()


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def cpu_snapshot(worker: int, database: str) -> dict[str, float]:
    """CPU seconds used so far by: the worker's main process, its pool children, this runner
    (the fake API's threads live here), the database's backends and Redis."""
    tree = _children()
    backends = redis = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            cmd = _cmdline(int(entry))
            if cmd.startswith("postgres:") and database in cmd:
                backends += _cpu_seconds(int(entry))
            elif cmd.startswith("redis-server"):
                redis += _cpu_seconds(int(entry))
    children, todo = 0.0, list(tree.get(worker, []))
    while todo:
        pid = todo.pop()
        children += _cpu_seconds(pid)
        todo.extend(tree.get(pid, []))
    return {
        "worker_main": _cpu_seconds(worker),
        "worker_children": children,
        "runner_and_fake": _cpu_seconds(os.getpid()),
        "postgres": backends,
        "redis": redis,
    }
