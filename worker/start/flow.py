"""The start task's flow: re-check the claim, write the attempt ahead, call, store the result.

Each call to the API follows the same three steps:
1. one transaction: confirm the claim (renewing its lease) and write the attempt row, so the
   attempt exists before the request leaves;
2. the call, outside any transaction;
3. one transaction: the attempt's outcome and the booking's new state together.
If the process dies between 1 and 3, the attempt keeps no outcome; whoever claims the row next
sees it and reconciles (asks for the meeting's active livestream) before any new start call.

In the plain case (claim held, deadline ahead, no unclear earlier call, token not paused) the
check and step 1 are one conditional UPDATE and one INSERT in one transaction, so a start costs
two transactions and six statements; anything else takes the longer path that looks closer.

What to do at each step is decided in ``worker.upstream.policy``; ``worker.start.recorder`` writes
it down, with the SQL of ``worker.lease.claims`` and ``worker.bookings.transitions`` (the booking
row) and ``worker.upstream.attempts`` (the attempt rows). This module is the flow between them.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from models import AttemptAction, AttemptOutcome, ScheduledStream, StreamState
from models.db import db_now
from worker import logformat, metrics
from worker.errors import AmbiguousError, NotDueYet, RetryableError, UpstreamError
from worker.settings import Settings
from worker.start import claims
from worker.start.recorder import Recorder
from worker.start.runs import ENDED, Job, RunResult
from worker.upstream import attempts, pacing, policy
from worker.upstream.policy import StartDecision, StartStep
from worker.upstream.realtimekit import Livestream, RealtimeKitClient

if TYPE_CHECKING:
    from worker.start.results import Results

log = logging.getLogger(__name__)
# Seconds of a pause begun here within which a prepared start still leaves: the skew between
# the database's clock, by which retries are due, and this process's monotonic clock.
PAUSE_SLACK = 0.5

T = TypeVar("T")


class Starter:
    """Runs start tasks for one process: a session factory, settings and an API client."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        client: RealtimeKitClient,
        *,
        owner: uuid.UUID,
        rand: random.Random | None = None,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.client = client
        self.owner = owner  # this process's heartbeat id: named on every claim it confirms
        self.record = Recorder(factory, settings, owner=owner, rand=rand or random.Random())

    def run(self, stream_id: uuid.UUID, token: uuid.UUID) -> RunResult:
        """Do what the claim asks, if it is still this one."""
        with logformat.context(stream_id=str(stream_id)):
            return self._run(stream_id, token)

    def send_prepared(self, job: Job, number: int, results: Results) -> RunResult:
        """The start call ``number`` of a claim a launch confirmed and wrote ahead
        (worker.start.launch), and its result: at its instant, only the request is left.
        A clean 201 goes to ``results`` (written in batches), anything else is written here.

        A start prepared before a 429 answered another start of this process is not sent
        into the pause it began: its call is closed as not sent, and the booking is due again
        when the pause ends, as if the API had answered it 429 too (without spending a
        request). Pauses begun in other processes are seen by each start's next run.
        """
        with logformat.context(stream_id=str(job.stream_id)):
            paused = self.record.paused_here_until - time.monotonic()
            # A retry due at the pause's end (by the database's clock) may come a few ms
            # before it on this clock: that one is the retry the pause was waiting for.
            if paused > PAUSE_SLACK:
                held = RetryableError(
                    f"not sent: the API token is paused for {paused:.1f} s more (a 429 answered"
                    " another start)",
                    retry_after=paused,
                )
                return self.record.settle(job, number, AttemptAction.START, held, time.monotonic())
            call = partial(self._call_start, results=results)
            return self._guarded(job, number, AttemptAction.START, call)

    def _run(self, stream_id: uuid.UUID, token: uuid.UUID) -> RunResult:
        plain = self._begin_plain_start(stream_id, token)
        if plain is not None:
            return self._guarded(*plain, AttemptAction.START, self._call_start)
        begun = self._begin(stream_id, token)
        if isinstance(begun, RunResult):
            return begun
        job, step = begun
        if step is StartStep.RECONCILE:
            number = self.record.write_ahead(job, AttemptAction.RECONCILE)
            if number is None:
                return RunResult.STALE
            ended = self._guarded(job, number, AttemptAction.RECONCILE, self._reconcile)
            if ended is not None:
                return ended
        number = self.record.write_ahead(job, AttemptAction.START)
        if number is None:
            return RunResult.STALE
        return self._guarded(job, number, AttemptAction.START, self._call_start)

    def _guarded(
        self, job: Job, number: int, action: AttemptAction, step: Callable[[Job, int], T]
    ) -> T | RunResult:
        """Run the step of call ``number``, whose attempt row is written: whatever goes wrong
        in it ends the run in a defined state, never in a claim that loops between workers.

        A database error is left to the task (it runs again, and the claim's owner or lease
        recovers the row). Anything else may have come after the request left: the call is
        unclear, so it is reconciled before any other, within the policy's limits.
        """
        started = time.monotonic()
        try:
            with logformat.context(attempt=number):
                return step(job, number)
        except (OperationalError, NotDueYet):
            raise
        except Exception as exc:
            log.exception(
                "booking %s: unexpected %s during its %s call",
                job.stream_id,
                type(exc).__name__,
                action.value,
                extra={"action": "start_crashed", "stream_id": str(job.stream_id)},
            )
            # Only the type: an exception's text is not known to be free of secrets.
            error = AmbiguousError(f"{action.value}: unexpected {type(exc).__name__} in the worker")
            return self.record.settle(job, number, action, error, started)

    def _begin_plain_start(self, stream_id: uuid.UUID, token: uuid.UUID) -> tuple[Job, int] | None:
        """Claim check and write-ahead together when nothing needs a closer look, else None."""
        with self.factory.begin() as session:
            now = db_now(session)
            confirmed = claims.confirm_plain_start(
                session,
                stream_id,
                token,
                now,
                lease=self.settings.claims.lease,
                owner=self.owner,
                token_key=self.record.token_key,
            )
            if confirmed is None:
                return None
            renewed, row = confirmed
            job = Job.of(row, stream_id, renewed, first_unclear=None)
            attempts.insert_attempt(
                session, stream_id, row.attempts, AttemptAction.START, renewed, now
            )
        return job, row.attempts

    def _begin(self, stream_id: uuid.UUID, token: uuid.UUID) -> tuple[Job, StartStep] | RunResult:
        """Is the claim still ours, and what must happen first: a reconcile, a start, or none."""
        with self.factory.begin() as session:
            now = db_now(session)
            row = session.get(ScheduledStream, stream_id)
            if row is None or row.state != StreamState.STARTING or row.claim_token != token:
                return RunResult.STALE  # a replayed message, or the reaper gave the row away
            unclear = attempts.first_unclear_call(session, stream_id)
            since = unclear.sent_at if unclear is not None else None
            job = Job.of(row, stream_id, token, first_unclear=since)
            decision = policy.before_call(
                now=now,
                due_at=row.due_at,
                deadline=row.start_deadline,
                attempts=row.attempts,
                last_error=row.last_error,
                paused_until=pacing.paused_until(session, self.record.token_key, now),
                unclear=unclear is not None,
            )
            if decision.next in (StartStep.START, StartStep.RECONCILE):
                return job, decision.next
            if decision.next is StartStep.WAIT:
                assert decision.retry_at is not None
                raise NotDueYet((decision.retry_at - now).total_seconds())
            self.record.end(session, now, job, decision)
        if decision.next is StartStep.RETRY:
            return RunResult.PAUSED
        return ENDED[decision.next]

    def _reconcile(self, job: Job, number: int) -> RunResult | None:
        """Did an unclear call create a livestream? None: it did not, and a start may follow."""
        started = time.monotonic()
        try:
            found = self.client.get_active_livestream(job.account_id, job.app_id, job.meeting_id)
        except UpstreamError as exc:
            metrics.RECONCILES.labels(result="error").inc()
            return self.record.settle(job, number, AttemptAction.RECONCILE, exc, started)
        duration = time.monotonic() - started
        first_unclear = job.first_unclear
        assert first_unclear is not None  # only an unclear call is reconciled

        def write(session: Session, now: datetime) -> StartDecision:
            decision = policy.after_reconcile(
                found, name=job.name, first_unclear=first_unclear, now=now, deadline=job.deadline
            )
            if decision.next is StartStep.STORE:
                return decision  # the store closes the attempt, with the livestream
            assert decision.outcome is not None
            attempts.finish_attempt(
                session, job.stream_id, number, now, decision.outcome, duration=duration
            )
            if decision.next is not StartStep.START:
                self.record.end(session, now, job, decision)
            return decision

        decision = self.record.write(write)
        found_ours = decision.next is StartStep.STORE
        metrics.RECONCILES.labels(result="adopted" if found_ours else "absent").inc()
        if decision.next is StartStep.STORE and found is not None:
            return self._store(job, number, found, AttemptOutcome.ADOPTED, duration)
        return None if decision.next is StartStep.START else self.record.report(job, decision)

    def _call_start(self, job: Job, number: int, results: Results | None = None) -> RunResult:
        """The start call, whose attempt row is already written, and its result."""
        started = time.monotonic()
        if number == 1 and job.scheduled_at is not None:  # the first start request leaves now
            late = time.time() - job.scheduled_at.timestamp()
            metrics.START_LATENESS.observe(max(0.0, late))
        try:
            result = self.client.start_livestream(
                job.account_id,
                job.app_id,
                job.meeting_id,
                name=job.name,
                width=job.width,
                height=job.height,
            )
        except UpstreamError as exc:
            return self.record.settle(job, number, AttemptAction.START, exc, started)
        took = time.monotonic() - started
        if results is not None and policy.after_livestream(result).next is StartStep.STORE:
            results.add(job, number, result, took)
            return RunResult.STARTED
        return self._store(job, number, result, AttemptOutcome.STARTED, took)

    def _store(
        self, job: Job, number: int, found: Livestream, outcome: AttemptOutcome, duration: float
    ) -> RunResult:
        """Store the livestream a call returned: the booking is started. Without a stream key
        (an adopted livestream's answer has none) the key is fetched first, as a call of its
        own: written ahead, counted by the rate budget, retried until the deadline."""

        def close(session: Session, now: datetime) -> None:
            attempts.finish_attempt(
                session,
                job.stream_id,
                number,
                now,
                outcome,
                duration=duration,
                livestream_id=found.id,
                call=found.call,
            )

        if found.stream_key is not None:
            return self.record.finish_store(job, found, RunResult(outcome.value), close)
        fetch = self.record.write_ahead(job, AttemptAction.FETCH_KEY, close=close)
        if fetch is None:
            return self.record.claim_lost(job, found)

        def call(job: Job, number: int) -> RunResult:
            started = time.monotonic()
            try:
                full = self.client.get_livestream(job.account_id, job.app_id, found.id)
            except UpstreamError as exc:
                return self.record.settle(job, number, AttemptAction.FETCH_KEY, exc, started, found)
            keyed, took = found.with_key_of(full), time.monotonic() - started

            def close_fetch(session: Session, now: datetime) -> None:
                attempts.finish_attempt(
                    session,
                    job.stream_id,
                    number,
                    now,
                    AttemptOutcome.FETCHED if keyed.stream_key else AttemptOutcome.FATAL,
                    error_message=None if keyed.stream_key else "no stream key in the answer",
                    duration=took,
                    livestream_id=found.id,
                    call=full.call,
                )

            return self.record.finish_store(job, keyed, RunResult(outcome.value), close_fetch)

        return self._guarded(job, fetch, AttemptAction.FETCH_KEY, call)
