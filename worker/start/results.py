"""The results of a launch's starts, written in batches: a burst of N started livestreams costs
a few transactions, not N.

A sender thread hands each clean 201 (a livestream with its stream key) to :class:`Results`
and goes on to the next request; one writer thread gathers what came within a few
milliseconds and writes it in ONE transaction: every attempt's outcome, every booking's
``started`` (each still the conditional UPDATE under its claim, run as one executemany), the
events of those that were written and their first timeline rows. The rules of docs/DESIGN.md
"Exactly one start per booking" hold per booking: a booking whose claim was lost meanwhile is
not written (its livestream is adopted by the next claim's reconcile), and if the transaction
cannot be written at all, every call in it stays unclear and recovery reconciles it.

Anything else that can follow a call (an error, a livestream without a key, a reconcile) is
written at once, one transaction per start, as before (``worker.start.recorder``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from models import AttemptOutcome, EventType, ScheduledStream, StatusSource
from worker.bookings import observe, transitions
from worker.notify import outbox
from worker.start.recorder import Recorder
from worker.start.runs import Job
from worker.upstream import attempts
from worker.upstream.responses import Livestream

START = StatusSource.START
log = logging.getLogger(__name__)

GATHER = 0.005  # seconds the writer waits for more results once one has come
RETRY_PAUSE = 1.0  # seconds between two tries of results the database refused
BATCH = 200  # results in one transaction at most

S = ScheduledStream


@dataclass(frozen=True)
class Started:
    """One start call that created a livestream with its key; ``ciphertext`` is the key."""

    job: Job
    number: int
    found: Livestream
    ciphertext: str
    duration: float
    until: float  # monotonic: tried until then (well inside the claim's lease), then left


class Results:
    """Writes started livestreams in batches from a thread of its own."""

    def __init__(self, recorder: Recorder, first_check: float, lease: float) -> None:
        self.recorder = recorder
        self.first_check = first_check
        self.patience = lease / 2
        self._items: list[Started] = []
        self._busy = 0
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="livestreams-results", daemon=True)
        self._thread.start()

    def add(self, job: Job, number: int, found: Livestream, duration: float) -> None:
        """Write ``found`` for call ``number`` of ``job`` soon, with others."""
        assert found.stream_key is not None
        ciphertext = self.recorder.cipher().encrypt(found.stream_key)
        with self._wake:
            until = time.monotonic() + self.patience
            self._items.append(Started(job, number, found, ciphertext, duration, until))
            self._busy += 1
            self._wake.notify_all()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._items and not self._closed:
                    self._wake.wait()
                if not self._items:
                    return
            time.sleep(GATHER)  # let the rest of an instant's answers come in
            with self._wake:
                batch, self._items = self._items[:BATCH], self._items[BATCH:]
            again: list[Started] = []
            try:
                self._write(batch)
            except OperationalError:
                # The database is away. This process knows which livestream each call created
                # and still holds the claims: it keeps trying, well inside their lease, rather
                # than leave the calls unclear; a reconcile long after the call could find
                # another livestream on the meeting by then (ours ended, someone else's begun).
                now = time.monotonic()
                again = [s for s in batch if s.until > now]
                self._give_up(batch, again)
            except Exception:  # the calls stay unclear: recovery reconciles each one
                log.exception(
                    "%d started livestreams could not be written; each is reconciled by its"
                    " next claim",
                    len(batch),
                    extra={"action": "results_not_written"},
                )
            finally:
                with self._wake:
                    self._items[:0] = again
                    self._busy -= len(batch) - len(again)
                    self._wake.notify_all()
            if again:
                time.sleep(RETRY_PAUSE)

    def _give_up(self, batch: list[Started], kept: list[Started]) -> None:
        """Say what a refused write came to: tried again (``kept``), or left to recovery."""
        if kept:
            log.warning(
                "%d started livestreams not written yet (database error); trying again",
                len(kept),
                extra={"action": "results_not_written"},
            )
        if len(kept) < len(batch):
            log.warning(
                "%d started livestreams could not be written in time; each is reconciled by"
                " its next claim",
                len(batch) - len(kept),
                extra={"action": "results_not_written"},
            )

    def _write(self, batch: list[Started]) -> None:
        written = self.recorder.write(lambda session, now: self._store(session, now, batch))
        lost = [s for s in batch if s.job.stream_id not in written]
        for s in batch:
            if s.job.stream_id in written:
                log.info(
                    "livestream %s for booking %s (started)",
                    s.found.id,
                    s.job.stream_id,
                    extra={"action": "stream_started", "livestream_id": s.found.id},
                )
        for s in lost:
            self.recorder.claim_lost(s.job, s.found)

    def _store(self, session: Session, now: datetime, batch: list[Started]) -> set[uuid.UUID]:
        """STORE_STARTED_MANY, in one transaction; the ids of the bookings written."""
        attempts.finish_attempts(
            session,
            [
                attempts.finished(
                    s.job.stream_id,
                    s.number,
                    now,
                    AttemptOutcome.STARTED,
                    duration=s.duration,
                    livestream_id=s.found.id,
                    call=s.found.call,
                )
                for s in batch
            ],
        )
        first_check = now + timedelta(seconds=self.first_check)
        transitions.finish_started_many(
            session,
            [(s.job.stream_id, s.job.token, s.found, s.ciphertext) for s in batch],
            now,
            first_check,
        )
        ours = {s.job.stream_id: s.found.id for s in batch}
        # Which conditional UPDATEs applied: the row holds our livestream, started just now.
        query = select(S.id, S.livestream_id).where(S.id.in_(list(ours)), S.started_at == now)
        written: set[uuid.UUID] = {
            r.id for r in session.execute(query) if ours.get(r.id) == r.livestream_id
        }
        outbox.emit_many(session, EventType.BOOKING_STARTED, list(written), now)
        seen = [
            (s.job.stream_id, observe.Observation(s.found.id, s.found.status, now, START))
            for s in batch
            if s.job.stream_id in written and s.found.status
        ]
        for stream_id, live in [(i, o) for i, o in seen if o.status == observe.LIVE]:
            observe.apply(session, stream_id, live, now)  # live already: started -> live
        observe.record_many(session, [(i, o) for i, o in seen if o.status != observe.LIVE], now)
        return written

    def drain(self, timeout: float) -> bool:
        """Wait until every result handed over is written or given up (True), or ``timeout``
        seconds (False)."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._busy, timeout)

    def close(self, timeout: float) -> bool:
        drained = self.drain(timeout)
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        self._thread.join(timeout=1.0)
        return drained
