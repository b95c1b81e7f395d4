"""The process's launch thread: sends each prepared start at its instant.

A launch run (``worker.start.launch``) confirms its claims and writes their attempts ahead,
then hands each start to this timer and returns: the pool process is free again long before
the instant, and what is left at the instant is the request alone. One thread keeps the
instants in a heap and wakes at each; a few sender threads make the requests concurrently
(over the API client's keep-alive pool) and record the results, so a slow answer never holds
back the next instant.

Instants are kept on this process's monotonic clock, taken when the database's clock was read:
a change of the wall clock neither fires a start early nor holds it back.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

SENDERS = 16  # concurrent requests of one process at one instant


class LaunchTimer:
    """Runs ``fn`` at monotonic instant ``when`` (:meth:`at`), on a sender thread."""

    def __init__(self, senders: int = SENDERS) -> None:
        self._heap: list[tuple[float, int, Callable[[], object]]] = []
        self._order = itertools.count()  # equal instants keep the order they came in
        self._wake = threading.Condition()
        self._busy = 0  # handed to a sender, not finished
        self._closed = False
        self._senders = ThreadPoolExecutor(senders, thread_name_prefix="livestreams-send")
        self._thread = threading.Thread(target=self._run, name="livestreams-launch", daemon=True)
        self._thread.start()

    def at(self, when: float, fn: Callable[[], object]) -> None:
        """Run ``fn`` at ``when`` (``time.monotonic()``'s clock), or at once if that passed."""
        with self._wake:
            if self._closed:
                raise RuntimeError("the launch timer is closed")
            heapq.heappush(self._heap, (when, next(self._order), fn))
            self._busy += 1
            self._wake.notify_all()

    @property
    def waiting(self) -> int:
        """Starts handed to the timer and not finished yet."""
        with self._wake:
            return self._busy

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._heap:
                    self._wake.wait()
                if self._closed and not self._heap:
                    return
                when, _, fn = self._heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                heapq.heappop(self._heap)
            self._senders.submit(self._send, fn)

    def _send(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:  # never let one start take the sender down; recovery has its row
            log.exception("a prepared start failed", extra={"action": "launch_send_crashed"})
        finally:
            with self._wake:
                self._busy -= 1
                self._wake.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until every start handed over has been sent and recorded (True), or
        ``timeout`` seconds (False)."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._busy, timeout)

    def close(self, timeout: float) -> bool:
        """Drain (see :meth:`drain`), then stop the threads. What was not sent by then stays
        written ahead: its claim's owner stops beating, and recovery reconciles it."""
        drained = self.drain(timeout)
        with self._wake:
            self._closed = True
            self._heap.clear()
            self._wake.notify_all()
        self._thread.join(timeout=1.0)
        self._senders.shutdown(wait=drained, cancel_futures=True)
        return drained
