"""Real ``celery worker``, ``celery beat`` and ``livestreams serve`` processes: start, wait until
ready, watch, stop.

The one harness behind ``livestreams demo``, the acceptance and chaos tests and the benchmarks.
Each process runs in a process group (a session) of its own, so a stop or a kill takes its pool
children with it, and a Ctrl-C in the terminal reaches only the caller, which stops them all.
Each process logs to ``<logdir>/<name>.log``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import httpx

from worker.errors import ProcessExitedError

# Variables the product reads: a process given its settings must not also see the caller's.
PRODUCT_ENV_PREFIXES = ("LIVESTREAMS_", "CLOUDFLARE_", "REALTIMEKIT_")
WORKER_READY = b" ready."  # "celery@host ready.", once the worker consumes
BEAT_READY = b"beat: Starting"
READY_TIMEOUT = 60.0

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """The first truthy value of ``predicate``, polled every ``interval`` seconds; raises
    TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def free_port(host: str = "127.0.0.1", preferred: int = 0) -> int:
    """A TCP port nothing listens on at this moment, for a child to bind: ``preferred`` if it
    is free, else one the OS picks."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            chosen: int = probe.getsockname()[1]
            return chosen
    raise OSError(f"no free port on {host}")


def isolated_env(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any product setting, then ``settings``: a child
    sees exactly the settings it is given, never a developer's shell."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(PRODUCT_ENV_PREFIXES)}
    return {**inherited, **settings}


class CeleryProcesses:
    """Celery (and `livestreams serve`) processes sharing one environment; every one is stopped
    on leaving the block.

    ``env`` is the whole environment of each process (see :func:`isolated_env`); ``cwd`` is
    where they run (None: the caller's; the installed package holds all they read);
    ``grace`` is how long a stop waits after SIGTERM before it sends SIGKILL.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        logdir: Path,
        *,
        cwd: Path | None = None,
        grace: float = 15.0,
    ) -> None:
        self.env = dict(env)
        self.logdir = logdir
        self.cwd = cwd
        self.grace = grace
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._log_start: dict[str, int] = {}

    def log(self, name: str) -> Path:
        return self.logdir / f"{name}.log"

    def spawn(self, name: str, app: str, args: list[str]) -> subprocess.Popen[bytes]:
        """``celery -A app *args``, logging to :meth:`log`; appended to, so a name used again
        keeps the earlier run's lines (a ready check reads only the new ones)."""
        return self._popen(name, [sys.executable, "-m", "celery", "-A", app, *args])

    def _popen(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        path = self.log(name)
        with path.open("ab") as out:
            self._log_start[name] = out.tell()
            proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
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
        app: str = "worker",
        with_beat: bool = False,
        queues: list[str] | None = None,
        loglevel: str = "INFO",
        wait: bool = True,
    ) -> subprocess.Popen[bytes]:
        """A ``celery worker`` at ``loglevel``; ``with_beat`` embeds beat in it (``-B``), as a
        one-box setup runs; ``queues``: only these lanes (``-Q``); ``wait`` returns only once it
        consumes."""
        embedded = ["-B", "-s", str(self.logdir / f"{name}-schedule")] if with_beat else []
        if queues:
            embedded += ["-Q", ",".join(queues)]
        proc = self.spawn(
            name,
            app,
            ["worker", "--loglevel", loglevel, "--pool", pool, "--concurrency", str(concurrency),
             "--hostname", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
             "--without-heartbeat", *embedded],
        )  # fmt: skip
        if wait:
            self.wait_ready(name, WORKER_READY)
        return proc

    def beat(
        self,
        name: str,
        *args: str,
        app: str = "worker",
        loglevel: str = "INFO",
        wait: bool = True,
    ) -> subprocess.Popen[bytes]:
        """A ``celery beat`` with its schedule file in ``logdir``; ``args`` go after the rest
        (``-S <scheduler>``); ``wait`` returns only once it has started (at INFO or lower)."""
        schedule = str(self.logdir / f"{name}-schedule")
        proc = self.spawn(name, app, ["beat", "--loglevel", loglevel, "-s", schedule, *args])
        if wait:
            self.wait_ready(name, BEAT_READY)
        return proc

    def serve(
        self, name: str, port: int, *, host: str = "127.0.0.1", workers: int = 1, wait: bool = True
    ) -> subprocess.Popen[bytes]:
        """``livestreams serve`` (the HTTP API) on ``host:port``; ``wait`` returns only once its
        /healthz answers."""
        proc = self._popen(
            name,
            [sys.executable, "-m", "worker.cli", "serve", "--host", host, "--port", str(port),
             "--workers", str(workers)],
        )  # fmt: skip
        if wait:
            self.wait_answering(name, f"http://{host}:{port}/healthz")
        return proc

    def wait_answering(self, name: str, url: str, timeout: float = READY_TIMEOUT) -> None:
        """Until a GET of ``url`` answers 200; raises ProcessExitedError at once if ``name``
        exits first."""
        proc = self.procs[name]

        def answers() -> bool:
            self._check(name, proc)
            try:
                return httpx.get(url, timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, timeout, f"{name} to answer {url}", interval=0.2)

    def wait_ready(self, name: str, marker: bytes, timeout: float = READY_TIMEOUT) -> None:
        """Until ``marker`` is in what ``name`` logged since it was spawned; raises
        ProcessExitedError at once if it exits first."""
        proc, path, start = self.procs[name], self.log(name), self._log_start[name]

        def ready() -> bool:
            self._check(name, proc)
            with path.open("rb") as log:
                log.seek(start)
                return marker in log.read()

        wait_until(ready, timeout, f"{name} to be ready")

    def tail(self, name: str, chars: int = 3000) -> str:
        return self.log(name).read_text(errors="replace")[-chars:]

    def logs(self, chars: int = 4000) -> str:
        """The end of every log in ``logdir``, each under its file name: for a failure report."""
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}"
            for p in sorted(self.logdir.glob("*.log"))
        )

    def check_alive(self) -> None:
        """Raises ProcessExitedError (with the end of its log) if any process has exited."""
        for name, proc in self.procs.items():
            self._check(name, proc)

    def _check(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            raise ProcessExitedError(name, proc.returncode, self.log(name), self.tail(name))

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal ``name``'s whole process group (SIGKILL: no goodbye) and forget it."""
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(30)

    def stop(self) -> None:
        """SIGTERM to every group, then SIGKILL to those still running after ``grace``."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.procs.clear()

    def __enter__(self) -> CeleryProcesses:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
