"""How much of the machine other work took during a case: figures from a shared box are only
as good as its quiet. Samples /proc; a process that exits between samples loses its last slice.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


class Noise:
    """CPU used by processes outside this run (its process tree, its database's backends,
    PostgreSQL's and Redis's own processes), as a share of all cores over the measured time."""

    def __init__(self, database: str, interval: float = 0.5) -> None:
        self.database = database
        self.interval = interval
        self.root = os.getpid()
        self._last: dict[str, tuple[bool, int]] = {}
        self._other = 0
        self._elapsed = 0.0
        self._stop = threading.Event()
        self._first = True

    def _ours(self, pid: str, parents: dict[str, str]) -> bool:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return False
        if cmd.startswith("postgres:"):
            # Backends and autovacuum workers name their database; the server's own
            # processes (checkpointer, WAL writer, ...) serve everyone and count as ours.
            if "(" in cmd or "[local]" in cmd or "autovacuum worker" in cmd:
                return self.database in cmd
            return True
        if "/bin/postgres" in cmd:
            return True
        if "redis-server" in cmd:
            return True
        current = pid
        while current in parents and current != "1":
            if current == str(self.root):
                return True
            current = parents[current]
        return False

    def sample(self) -> None:
        parents: dict[str, str] = {}
        ticks: dict[str, int] = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                parents[pid] = stat[1]
                ticks[pid] = int(stat[11]) + int(stat[12])  # utime + stime
        current: dict[str, tuple[bool, int]] = {}
        for pid, used in ticks.items():
            known = self._last.get(pid)
            ours = known[0] if known else self._ours(pid, parents)
            current[pid] = (ours, used)
            if not ours and not self._first:
                # A process born since the last sample spent all of its time in the case.
                self._other += used - (known[1] if known else 0)
        self._last = current
        self._first = False

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()
            self._elapsed += self.interval

    @contextlib.contextmanager
    def measuring(self) -> Iterator[Noise]:
        self.sample()
        thread = threading.Thread(target=self._run, name="noise-sampler", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()

    @property
    def share(self) -> float:
        """Other processes' CPU time / (elapsed time x cores), 0..1."""
        cores = os.cpu_count() or 1
        return self._other / TICKS / max(self._elapsed * cores, 1e-9)
