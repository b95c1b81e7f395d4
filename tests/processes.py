"""Real `celery worker` and `celery beat` processes for the acceptance and chaos tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import redis

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Celery:
    """Starts and stops Celery processes with one environment; every one is killed at the end."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("LIVESTREAMS_", "CLOUDFLARE_", "REALTIMEKIT_"))
            },
            **env,
        }
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, name: str) -> Path:
        return self.logdir / f"{name}.log"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with self.log(name).open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "worker", *args],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a kill takes its pool children too
            )
        self.procs[name] = proc
        return proc

    def worker(
        self,
        name: str,
        *,
        pool: str = "prefork",
        concurrency: int = 2,
        wait: bool = True,
        with_beat: bool = False,
    ) -> subprocess.Popen[bytes]:
        """A `celery worker`; ``with_beat`` embeds beat in it (`-B`), as a one-box setup runs."""
        embedded = ["-B", "-s", str(self.logdir / f"{name}-schedule")] if with_beat else []
        proc = self._spawn(
            name,
            [
                "worker", "--loglevel", "INFO", "--pool", pool, "--concurrency", str(concurrency),
                "--hostname", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
                "--without-heartbeat", *embedded,
            ],
        )  # fmt: skip
        if wait:
            wait_until(lambda: b" ready." in self.log(name).read_bytes(), 60, f"{name} ready")
        return proc

    def beat(self, name: str, *, loglevel: str = "INFO") -> subprocess.Popen[bytes]:
        schedule = self.logdir / f"{name}-schedule"
        return self._spawn(name, ["beat", "--loglevel", loglevel, "-s", str(schedule)])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(30)

    def stop(self) -> None:
        for name in list(self.procs):
            proc = self.procs[name]
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name in list(self.procs):
            proc = self.procs.pop(name)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
            for p in self.logdir.glob("*.log")
        )


class RedisServer:
    """A Redis server of one test alone, on a port of its own: no other run's workers take its
    messages, MONITOR sees only this run, and it can be killed and started again, empty."""

    def __init__(self, tmp: Path) -> None:
        if shutil.which("redis-server") is None:
            (pytest.fail if IN_CI else pytest.skip)("redis-server is not installed")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.logfile = tmp / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with self.logfile.open("ab") as log:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        client = redis.Redis(port=self.port)
        try:
            wait_until(lambda: _pings(client), 10, f"redis-server on port {self.port}")
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)  # no save, no goodbye: everything is lost
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@contextlib.contextmanager
def own_redis(tmp: Path) -> Iterator[RedisServer]:
    """A running :class:`RedisServer`, stopped on leaving the block."""
    server = RedisServer(tmp)
    server.start()
    try:
        yield server
    finally:
        server.stop()
