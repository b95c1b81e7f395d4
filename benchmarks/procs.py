"""Real ``celery worker`` and ``celery beat`` processes, and the memory they use.

Each process gets its own process group, so a stop takes its pool children with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from benchmarks.services import PRODUCT_PREFIXES, Bench

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Celery:
    """Celery processes with one environment; every one is stopped on leaving the block."""

    def __init__(self, bench: Bench, extra_env: dict[str, str] | None = None) -> None:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(PRODUCT_PREFIXES)}
        self.env = {**inherited, **bench.env, **(extra_env or {})}
        self.logdir = bench.workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, name: str) -> Path:
        return self.logdir / f"{name}.log"

    def _spawn(self, name: str, app: str, args: list[str]) -> subprocess.Popen[bytes]:
        with self.log(name).open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", app, *args],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def worker(
        self, name: str, pool: str, concurrency: int, app: str = "benchmarks.app"
    ) -> subprocess.Popen[bytes]:
        proc = self._spawn(
            name,
            app,
            ["worker", "--loglevel", "INFO", "--pool", pool, "--concurrency", str(concurrency),
             "--hostname", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
        )  # fmt: skip
        # INFO, as the README runs it: its per-task log lines are part of the cost measured.
        self._ready(name, proc, b"ready.")
        return proc

    def beat(self, name: str, *args: str, app: str = "worker") -> subprocess.Popen[bytes]:
        schedule = self.logdir / f"{name}-schedule"
        proc = self._spawn(name, app, ["beat", "--loglevel", "INFO", "-s", str(schedule), *args])
        self._ready(name, proc, b"beat: Starting")
        return proc

    def _ready(self, name: str, proc: subprocess.Popen[bytes], marker: bytes) -> None:
        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{self.tail(name)}")
            return marker in self.log(name).read_bytes()

        wait_until(ready, 60, f"{name} to be ready")

    def tail(self, name: str, chars: int = 3000) -> str:
        return self.log(name).read_text(errors="replace")[-chars:]

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{self.tail(name)}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.procs.clear()

    def __enter__(self) -> Celery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
