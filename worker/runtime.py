"""One runtime per worker process: settings, sessions, the API client and the starter.

A prefork child must not share its parent's pooled database connections or HTTP sockets (two
processes reading one socket see each other's answers), so each child builds its own runtime in
``worker_process_init`` (``worker.celery``). The solo and threads pools, beat and any other
process build it on first use; a runtime built before a fork is never used after it.

Tests build a runtime around their own settings and client and ``install`` it.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import uuid
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from models.db import get_sessionmaker
from worker.crypto import cipher_for
from worker.errors import LivestreamsError, exit_refusing
from worker.follow.flow import Tracker
from worker.lease.foreign import Foreign
from worker.lease.heartbeat import Heartbeat
from worker.notify.sender import Sender
from worker.settings import Settings
from worker.start.flow import Starter
from worker.start.launch import Launcher
from worker.start.results import Results
from worker.start.timer import LaunchTimer
from worker.upstream.realtimekit import RealtimeKitClient

LAUNCH_SWITCH_INTERVAL = 0.001  # seconds
log = logging.getLogger(__name__)


class Runtime:
    """What the tasks of one process share. The client and starter are made on first use,
    so a process that only dispatches never needs the API token."""

    def __init__(self, settings: Settings, *, client: RealtimeKitClient | None = None) -> None:
        self.settings = settings
        self.sessions: sessionmaker[Session] = get_sessionmaker(settings.database_url)
        self.pid = os.getpid()
        self._client = client
        self._starter: Starter | None = None
        self._tracker: Tracker | None = None
        self._sender: Sender | None = None
        self._launcher: Launcher | None = None
        self._heartbeat: Heartbeat | None = None
        self._lock = threading.Lock()  # the threads pool shares one runtime
        # Names claims that come from another deployment on the same broker database.
        self.foreign = Foreign(self.sessions)

    @classmethod
    def from_env(cls) -> Runtime:
        return cls(Settings.from_env())

    @property
    def client(self) -> RealtimeKitClient:
        with self._lock:
            if self._client is None:
                self._client = RealtimeKitClient.from_settings(self.settings)
            return self._client

    @property
    def starter(self) -> Starter:
        """The starter, and this process's heartbeat: a process that runs starts holds claims,
        so it beats from before its first claim names it as the owner."""
        client = self.client
        with self._lock:
            if self._starter is None:
                owner = self._beating()
                self._starter = Starter(self.sessions, self.settings, client, owner=owner)
            return self._starter

    @property
    def launcher(self) -> Launcher:
        """Launches of this process, and the launch thread that sends each start at its
        instant; made on first use, after a fork (its threads are this process's)."""
        starter = self.starter
        with self._lock:
            if self._launcher is None:
                # The launch thread must win the GIL at its instant from a task running in this
                # process; Python hands it over every switch interval (5 ms by default).
                sys.setswitchinterval(min(sys.getswitchinterval(), LAUNCH_SWITCH_INTERVAL))
                # A full garbage collection stops every thread of the process, the launch
                # thread too: over the ~90,000 objects a worker has once it has imported its
                # modules and built its runtime, 20-30 ms on a quiet machine. Those live as
                # long as the process; frozen, a full collection scans only what came after.
                gc.freeze()
                results = Results(
                    starter.record, self.settings.cadence.first_check, self.settings.claims.lease
                )
                self._launcher = Launcher(
                    self.sessions, self.settings, starter, LaunchTimer(), results, self.foreign
                )
            return self._launcher

    @property
    def tracker(self) -> Tracker:
        """The tracker (started and live rows), owned by the same heartbeat as the starter."""
        client = self.client
        with self._lock:
            if self._tracker is None:
                owner = self._beating()
                self._tracker = Tracker(self.sessions, self.settings, client, owner=owner)
            return self._tracker

    @property
    def sender(self) -> Sender:
        """The outbound webhook sender, owned by this process's heartbeat like the starter: a
        killed sender's deliveries are taken back within seconds, not at their lease's end."""
        with self._lock:
            if self._sender is None:
                cipher = cipher_for(self.settings, create=True)
                owner = self._beating()
                self._sender = Sender(self.sessions, self.settings, cipher, owner=owner)
            return self._sender

    def _beating(self) -> uuid.UUID:
        if self._heartbeat is None:
            self._heartbeat = Heartbeat(
                self.sessions, self.settings.claims.heartbeat_interval, lane=_lane
            )
            self._heartbeat.start()
        return self._heartbeat.id

    def beat_now(self) -> None:
        """Start beating before any start or check: the ops page then lists this process
        from its first moment. A database that is down only delays it to the first claim."""
        with self._lock:
            try:
                self._beating()
            except Exception:  # the first start or check tries again, and fails loudly there
                self._heartbeat = None
                log.warning("heartbeat not started yet", exc_info=True)

    def doing(self, what: str) -> None:
        """What this process is doing, said at its next beat (the ops page's processes)."""
        if self._heartbeat is not None:
            self._heartbeat.doing = what

    def close(self) -> None:
        """Send what this process prepared, then stop beating and close the API client's
        sockets (this process's own only)."""
        with self._lock:
            if self.pid == os.getpid():
                if self._launcher is not None:  # its starts are due within the lookahead
                    self._launcher.close(
                        self.settings.claims.lookahead + self.settings.claims.lease
                    )
                if self._heartbeat is not None:
                    self._heartbeat.stop()
                if self._client is not None:
                    self._client.close()
                if self._sender is not None:
                    self._sender.close()
            self._client = self._starter = self._tracker = self._heartbeat = None
            self._sender = self._launcher = None


_lock = threading.Lock()
_current: Runtime | None = None
# The queues this worker consumes, set in the main process before its children are forked.
_lane: str | None = None


def current() -> Runtime:
    """This process's runtime, built from the environment on first use and after a fork."""
    global _current
    with _lock:
        if _current is None or _current.pid != os.getpid():
            _current = Runtime.from_env()
        return _current


def install(runtime: Runtime | None) -> None:
    """Make ``runtime`` this process's runtime (None: build it again on next use)."""
    global _current
    with _lock:
        if _current is not None and _current is not runtime:
            _current.close()
        _current = runtime


def check_worker(settings: Settings) -> None:
    """What a worker needs before it takes any claim, checked at start-up.

    Without them every start would fail after its call (no key to encrypt the stream key
    with) or before its deadline logic (no token), and rows would loop between workers.
    """
    settings.require_token()
    cipher_for(settings, create=True)


def refuse_to_start(**_: Any) -> None:
    """``worker_init``: stop the worker at once, in one line naming the variable."""
    try:
        check_worker(Settings.from_env())
    except LivestreamsError as exc:
        exit_refusing(exc)


def shutdown_process(**_: Any) -> None:
    """``worker_process_shutdown``: this process holds no claim any more; stop beating."""
    global _current
    with _lock:
        if _current is not None:
            _current.close()
        _current = None


def init_process(**_: Any) -> None:
    """``worker_process_init``: a prefork child builds its own runtime, and beats.

    What it inherited is the parent's: its sockets are left alone, never closed here.
    """
    global _current
    with _lock:
        _current = Runtime.from_env()
    # Off the child's start-up: Celery gives a new child a few seconds to report ready, and a
    # slow database must not cost it that (the runtime's lock orders it before any claim).
    threading.Thread(target=_current.beat_now, name="livestreams-first-beat", daemon=True).start()


def note_lane(sender: Any = None, instance: Any = None, **_: Any) -> None:
    """``celeryd_after_setup``: remember the queues this worker consumes (its lane)."""
    global _lane
    try:
        names = sorted(instance.app.amqp.queues.consume_from)
    except AttributeError:  # not a worker as Celery builds one; no lane to say
        return
    _lane = ",".join(names)


def task_began(sender: Any = None, **_: Any) -> None:
    """``task_prerun``: the process is running this task now."""
    with _lock:
        here = _current
    if here is not None and sender is not None:
        here.doing(f"running {sender.name}")


def task_ended(**_: Any) -> None:
    """``task_postrun``: nothing running (a launch's thread may still be sending)."""
    with _lock:
        here = _current
    if here is not None:
        here.doing("idle")


_beat_heartbeat: Heartbeat | None = None


def beat_started(**_: Any) -> None:
    """``beat_init``: beat keeps a heartbeat row of its own, lane "beat", for the ops page
    (it holds no claim, so nothing is ever taken back for its silence)."""
    global _beat_heartbeat
    settings = Settings.from_env()
    beating = Heartbeat(
        get_sessionmaker(settings.database_url), settings.claims.heartbeat_interval, lane="beat"
    )
    beating.doing = "sending the dispatch tick every dispatch interval"
    try:
        beating.start()
    except Exception:  # beat must run without it: the ops page then lists no beat
        log.warning("beat's heartbeat not started", exc_info=True)
        return
    _beat_heartbeat = beating
