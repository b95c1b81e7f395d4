"""Real `celery worker` and `celery beat` processes for the acceptance and chaos tests.

The harness itself is :mod:`worker.processes` (the demo and the benchmarks use it too); here
are the test-only parts: processes run from the checkout root with only the settings a test
gives them, and a Redis server of a test's own, which skips (fails in CI) when not installed.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import IN_CI
from worker.processes import CeleryProcesses, free_port, isolated_env, wait_until

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["Celery", "RedisServer", "own_redis", "wait_until"]


class Celery(CeleryProcesses):
    """Celery processes for a test: ``env`` is the product settings (nothing else of the
    product leaks in from the shell), run from the checkout root, logs in ``logdir``."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        super().__init__(isolated_env(env), logdir, cwd=ROOT)


class RedisServer:
    """A Redis server of one test alone, on a port of its own: no other run's workers take its
    messages, MONITOR sees only this run, and it can be killed and started again, empty."""

    def __init__(self, tmp: Path) -> None:
        if shutil.which("redis-server") is None:
            (pytest.fail if IN_CI else pytest.skip)("redis-server is not installed")
        self.port = free_port()
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
