"""A launch run: prepare every start of a launch ahead of its instant, then let the process's
launch thread send each one at its instant (docs/DESIGN.md, "Launches").

1. One transaction: confirm every plain claim of the launch (one UPDATE, owner = this
   process) and write every attempt ahead (one INSERT). From here each start is the request
   alone; if the process dies, its attempts are unclear calls, and recovery reconciles them
   (the owner stops beating, the dispatcher takes the claims back within seconds).
2. Each confirmed start goes to the launch thread (``worker.start.timer``) for its instant;
   the request and its result are the single-start flow's own (``worker.start.flow``).
3. A claim still held but not plain (an unclear earlier call, a deadline, a pause) takes the
   single-start path at its instant, which looks closer (reconcile first, and so on).
4. A claim not held at all is stale (a replayed message, a claim taken back): nothing is done.
   If none of a launch's bookings exist in this database, another deployment most likely
   shares the broker: that is logged, at most once a minute (``worker.lease.foreign``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from models.db import db_now
from worker import metrics
from worker.errors import NotDueYet
from worker.lease.claims import ClaimKind
from worker.lease.foreign import Foreign, known
from worker.settings import Settings
from worker.start import claims, rules
from worker.start.flow import Starter
from worker.start.results import Results
from worker.start.runs import Job
from worker.start.timer import LaunchTimer
from worker.upstream import pacing

log = logging.getLogger(__name__)

# A database error in a single start at its instant is tried again this often, a second apart,
# before the claim is left to recovery (as the start task's retries do).
DB_RETRIES = 10


@dataclass(frozen=True)
class LaunchReport:
    confirmed: int  # written ahead, each sent at its instant
    single: int  # held but not plain: each takes the single-start path at its instant
    stale: int  # no longer this launch's claim: nothing done

    def __str__(self) -> str:
        return f"{self.confirmed} prepared, {self.single} single, {self.stale} stale"


class Launcher:
    """Runs launches for one process: confirms ahead, then schedules on its launch thread."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        starter: Starter,
        timer: LaunchTimer,
        results: Results,
        foreign: Foreign,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.starter = starter
        self.timer = timer
        self.results = results
        self.foreign = foreign  # names claims from another deployment (worker.lease.foreign)
        self.token_key = pacing.token_hash(settings.upstream.api_token)

    def run(self, token: uuid.UUID, stream_ids: Sequence[uuid.UUID]) -> LaunchReport:
        """Prepare the launch of ``stream_ids`` claimed under ``token``."""
        with self.factory.begin() as session:
            now = db_now(session)
            read_at = time.monotonic()  # ``now`` on this process's monotonic clock
            renewed, rows = claims.confirm_launch(
                session,
                token,
                stream_ids,
                now,
                lead=self.settings.claims.lookahead,
                lease=self.settings.claims.lease,
                owner=self.starter.owner,
                token_key=self.token_key,
            )
            confirmed = {row.id for row in rows}
            held = claims.still_held(session, token, [i for i in stream_ids if i not in confirmed])
            foreign = not rows and not held and known(session, ClaimKind.START, stream_ids) == 0
        for row in rows:
            job = Job.of(row, row.id, renewed, first_unclear=None)
            when = read_at + rules.seconds_until(row.due_at, now)
            self.timer.at(when, partial(self._send, job, row.attempts))
        for row in held:
            when = read_at + rules.seconds_until(row.due_at, now)
            self.timer.at(when, partial(self._single, row.id, token, DB_RETRIES))
        report = LaunchReport(len(rows), len(held), len(stream_ids) - len(rows) - len(held))
        if foreign:
            self.foreign.say(ClaimKind.START, len(stream_ids), token)
        return report

    def _send(self, job: Job, number: int) -> None:
        """At the instant: the request of a prepared start, and its result."""
        try:
            result = self.starter.send_prepared(job, number, self.results)
        except OperationalError:  # the result could not be written: recovery reconciles it
            log.warning(
                "booking %s: its start's result was not written (database error); recovery"
                " reconciles it",
                job.stream_id,
                extra={"action": "start_db_error", "stream_id": str(job.stream_id)},
            )
            return
        metrics.STARTS.labels(outcome=result.value).inc()

    def _single(self, stream_id: uuid.UUID, token: uuid.UUID, tries: int) -> None:
        """At the instant: a claim that needs a closer look, as one start task would run it."""
        again = partial(self._single, stream_id, token)
        try:
            result = self.starter.run(stream_id, token)
        except NotDueYet as exc:  # this process's clock runs ahead of the database's
            self.timer.at(time.monotonic() + exc.seconds, partial(again, tries))
            return
        except OperationalError:
            if tries > 1:
                self.timer.at(time.monotonic() + 1.0, partial(again, tries - 1))
            else:
                log.warning(
                    "booking %s: start interrupted by database errors; its claim is left to"
                    " recovery",
                    stream_id,
                    extra={"action": "start_db_error", "stream_id": str(stream_id)},
                )
            return
        metrics.STARTS.labels(outcome=result.value).inc()

    def drain(self, timeout: float) -> bool:
        """Wait until everything handed to this launcher has been sent and written (True), or
        ``timeout`` seconds (False)."""
        sent = self.timer.drain(timeout)
        return sent and self.results.drain(timeout)

    def close(self, timeout: float) -> bool:
        """Send what was prepared and write its results (True), within ``timeout`` seconds."""
        sent = self.timer.close(timeout)
        written = self.results.close(timeout)
        return sent and written
