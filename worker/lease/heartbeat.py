"""This process's heartbeat: the database row that says it is alive while it holds claims.

Every process that runs start tasks (each prefork child, or the worker itself in the solo and
threads pools) writes its row when its first start begins, then every heartbeat interval from
a daemon thread. A claim names its owner (``scheduled_streams.claim_owner``), so the dispatcher
takes back, within seconds, a claim whose owner stopped beating: a SIGKILLed child, a host that
died. An owner that beats is never robbed while its lease runs; the lease outlives the longest
call (``Settings.call_bound``), so a call still in flight always has a live lease.

Why the database and not Redis: the database is already the source of truth for claims, and a
heartbeat in Redis would vanish with a flushed or restarted broker, making every live owner
look dead at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from models import WorkerHeartbeat
from models.db import db_now, upsert_newer

log = logging.getLogger(__name__)

# Rows of processes gone this long are deleted when a process starts beating.
FORGET_AFTER = timedelta(hours=1)


class Heartbeat:
    """Beats for this process every ``interval`` seconds once started; ``id`` names it.

    Each beat also says the process's ``lane`` (the queues it consumes, or "beat") and what it
    is ``doing`` right now, for the ops page's processes: people read them, nothing decides
    on them.
    """

    def __init__(
        self, factory: sessionmaker[Session], interval: float, *, lane: str | None = None
    ) -> None:
        self.id = uuid.uuid4()
        self.pid = os.getpid()
        self.lane = lane
        self.doing = "idle"
        self._factory = factory
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        """Write the row now (so no claim names an owner without one), then keep beating."""
        with self._factory.begin() as session:
            now = db_now(session)
            session.execute(
                delete(WorkerHeartbeat).where(WorkerHeartbeat.beat_at < now - FORGET_AFTER)
            )
            self._beat(session)
        self._thread = threading.Thread(target=self._run, name="livestreams-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and delete the row: this process holds no claim any more."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 1)
        try:
            with self._factory.begin() as session:
                session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.id == self.id))
        except Exception:  # the row then ages out; its owner looks dead, which it is
            log.debug("could not delete the heartbeat row", exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with self._factory.begin() as session:
                    self._beat(session)
            except Exception:  # never let the thread die: a silent owner loses its claims
                if not self._failing:  # a database blink: the next beat tries again
                    log.warning(
                        "heartbeat not written; trying again every %g s",
                        self._interval,
                        exc_info=True,
                        extra={"action": "heartbeat_failed"},
                    )
                self._failing = True
            else:
                self._failing = False

    def _beat(self, session: Session) -> None:
        upsert_newer(
            session,
            WorkerHeartbeat,
            "id",
            "beat_at",
            id=self.id,
            hostname=socket.gethostname()[:255],
            pid=self.pid,
            beat_at=db_now(session),
            lane=self.lane[:255] if self.lane else None,
            doing=self.doing[:200],
        )
