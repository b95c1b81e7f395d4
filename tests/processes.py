"""Real `celery worker` and `celery beat` processes for the acceptance and chaos tests.

The harness itself is :mod:`worker.dev.processes` (the demo and the benchmarks use it too); here
are the test-only parts: processes run from the checkout root with only the settings a test
gives them, and a Redis server of a test's own, which skips (fails in CI) when not installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import random
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import IN_CI
from worker.dev.processes import CeleryProcesses, isolated_env, wait_until

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["Celery", "RedisServer", "free_port", "own_redis", "wait_until"]

# Ports handed to child processes (serve, redis-server) come from below the kernel's ephemeral
# range (32768-60999 by default), so no outgoing connection and no "bind to port 0" of another
# process takes one between our pick and the child's bind. Each pick holds a lock file for the
# life of the test process: parallel test workers, and test runs of two checkouts at once,
# never pick the same port.
PORTS = range(20000, 32000)
PORT_LOCKS = Path(tempfile.gettempdir()) / "livestreams-test-ports"
_held: list[object] = []


def free_port() -> int:
    """A loopback TCP port that nothing listens on and no other test process will pick."""
    PORT_LOCKS.mkdir(exist_ok=True)
    for _ in range(500):
        port = random.choice(PORTS)
        handle = (PORT_LOCKS / f"{port}.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port))
        except OSError:  # another test process holds it, or something listens there
            handle.close()
            continue
        _held.append(handle)  # released when this process exits
        return port
    raise OSError("no free loopback port left to reserve")


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
