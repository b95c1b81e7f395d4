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

What to do at each step is decided in ``worker.policy``; the SQL is in ``worker.claims`` (the
booking row) and ``worker.attempts`` (the attempt rows). This module only carries it out.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import replace
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from models import AttemptAction, AttemptOutcome, ScheduledStream, StreamState
from models.db import db_now, write_with_retries
from worker import attempts, claims, pacing, policy, transitions
from worker.backoff import Backoff
from worker.crypto import StreamKeyCipher, cipher_for
from worker.errors import NotDueYet, UpstreamError
from worker.policy import Decision, Next
from worker.realtimekit import Livestream, RealtimeKitClient
from worker.runs import ENDED, Job, RunResult
from worker.settings import Settings

log = logging.getLogger(__name__)

# Writing a result is retried this many times before the lease and the reconcile step are
# left to recover it: after a 201 the result must not be lost to a passing connection error.
RESULT_WRITE_TRIES = 5


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
        self.owner = owner  # this process's heartbeat id: named on every claim it confirms
        self.settings = settings
        self.client = client
        self.rand = rand or random.Random()
        self.token_key = pacing.token_hash(settings.api_token)
        self.backoff = Backoff(settings.backoff_base, settings.backoff_cap, settings.backoff_floor)
        self._stream_key_cipher: StreamKeyCipher | None = None

    def run(self, stream_id: uuid.UUID, token: uuid.UUID) -> RunResult:
        """Do what the claim asks, if it is still this one."""
        plain = self._begin_plain_start(stream_id, token)
        if plain is not None:
            return self._call_start(*plain)
        begun = self._begin(stream_id, token)
        if isinstance(begun, RunResult):
            return begun
        job, step = begun
        if step is Next.RECONCILE:
            ended = self._reconcile(job)
            if ended is not None:
                return ended
        number = self._write_ahead(job, AttemptAction.START)
        return RunResult.STALE if number is None else self._call_start(job, number)

    def _begin_plain_start(self, stream_id: uuid.UUID, token: uuid.UUID) -> tuple[Job, int] | None:
        """Claim check and write-ahead together when nothing needs a closer look, else None."""
        with self.factory.begin() as session:
            now = db_now(session)
            confirmed = claims.confirm_plain_start(
                session, stream_id, token, now,
                lease=self.settings.lease, owner=self.owner, token_key=self.token_key,
            )  # fmt: skip
            if confirmed is None:
                return None
            renewed, row = confirmed
            job = Job.of(row, stream_id, renewed, first_unclear=None)
            attempts.insert_attempt(
                session, stream_id, row.attempts, AttemptAction.START, renewed, now
            )
        return job, row.attempts

    def _begin(self, stream_id: uuid.UUID, token: uuid.UUID) -> tuple[Job, Next] | RunResult:
        """Is the claim still ours, and what must happen first: a reconcile, a start, or none."""
        with self.factory.begin() as session:
            now = db_now(session)
            row = session.get(ScheduledStream, stream_id)
            if row is None or row.state != StreamState.STARTING or row.claim_token != token:
                return RunResult.STALE  # a replayed message, or the reaper gave the row away
            unclear = attempts.first_unclear_call(session, stream_id)
            job = Job.of(row, stream_id, token, first_unclear=unclear)
            decision = policy.before_call(
                now=now,
                due_at=row.due_at,
                deadline=row.start_deadline,
                attempts=row.attempts,
                last_error=row.last_error,
                paused_until=pacing.paused_until(session, self.token_key, now),
                unclear=unclear is not None,
            )
            if decision.next in (Next.START, Next.RECONCILE):
                return job, decision.next
            if decision.next is Next.WAIT:
                assert decision.retry_at is not None
                raise NotDueYet((decision.retry_at - now).total_seconds())
            self._end(session, now, job, decision)
        if decision.next is Next.RETRY:
            return RunResult.PAUSED
        return ENDED[decision.next]

    def _reconcile(self, job: Job) -> RunResult | None:
        """Did an unclear call create a livestream? None: it did not, and a start may follow."""
        number = self._write_ahead(job, AttemptAction.RECONCILE)
        if number is None:
            return RunResult.STALE
        started = time.monotonic()
        try:
            found = self.client.get_active_livestream(job.account_id, job.app_id, job.meeting_id)
        except UpstreamError as exc:
            return self._settle(job, number, AttemptAction.RECONCILE, exc, started)
        duration = time.monotonic() - started
        first_unclear = job.first_unclear
        assert first_unclear is not None  # only an unclear call is reconciled

        def write(session: Session, now: datetime) -> Decision:
            decision = policy.after_reconcile(
                found, first_unclear=first_unclear, now=now, deadline=job.deadline
            )
            if decision.next is Next.STORE:
                return decision  # the store closes the attempt, with the livestream
            assert decision.outcome is not None
            attempts.finish_attempt(
                session, job.stream_id, number, now, decision.outcome, duration=duration
            )
            if decision.next is not Next.START:
                self._end(session, now, job, decision)
            return decision

        decision = write_with_retries(self.factory, write, RESULT_WRITE_TRIES)
        if decision.next is Next.STORE and found is not None:
            return self._store(job, number, found, AttemptOutcome.ADOPTED, duration)
        return None if decision.next is Next.START else self._report(job, decision)

    def _call_start(self, job: Job, number: int) -> RunResult:
        """The start call, whose attempt row is already written, and its result."""
        started = time.monotonic()
        try:
            result = self.client.start_livestream(
                job.account_id, job.app_id, job.meeting_id,
                name=job.name, width=job.width, height=job.height,
            )  # fmt: skip
        except UpstreamError as exc:
            return self._settle(job, number, AttemptAction.START, exc, started)
        return self._store(job, number, result, AttemptOutcome.STARTED, time.monotonic() - started)

    # -- writes --------------------------------------------------------------------------------

    def _write_ahead(self, job: Job, action: AttemptAction) -> int | None:
        """Confirm the claim for one call and write its attempt row; None if the claim is gone."""
        with self.factory.begin() as session:
            now = db_now(session)
            confirmed = claims.confirm_claim(
                session, job.stream_id, job.token, now, lease=self.settings.lease, owner=self.owner
            )
            if confirmed is None:
                return None
            number, job.token = confirmed
            if action is AttemptAction.RECONCILE:
                attempts.mark_orphaned(session, job.stream_id, number, now)
            attempts.insert_attempt(session, job.stream_id, number, action, job.token, now)
        return number

    def _settle(
        self, job: Job, number: int, action: AttemptAction, error: UpstreamError, started: float
    ) -> RunResult:
        """Close a call that raised ``error`` and do what the policy decides."""
        duration = time.monotonic() - started

        def write(session: Session, now: datetime) -> Decision:
            decision = policy.after_error(
                action, error, attempts=number, now=now, deadline=job.deadline,
                window=self.settings.start_window, backoff=self.backoff, rand=self.rand,
            )  # fmt: skip
            if decision.pause_until is not None:
                pacing.pause(session, self.token_key, decision.pause_until)
            assert decision.outcome is not None
            attempts.finish_attempt(
                session, job.stream_id, number, now, decision.outcome,
                error=error, error_message=policy.error_text(error), duration=duration,
            )  # fmt: skip
            self._end(session, now, job, decision)
            return decision

        return self._report(job, write_with_retries(self.factory, write, RESULT_WRITE_TRIES))

    def _end(self, session: Session, now: datetime, job: Job, decision: Decision) -> bool:
        """The booking's transition for a decision that ends the run without a livestream."""
        stream_id, token = job.stream_id, job.token
        if decision.next is Next.RETRY:
            assert decision.retry_at is not None
            return transitions.finish_retrying(
                session, stream_id, token, now, decision.retry_at, decision.reason
            )
        if decision.next is Next.MISS:
            return transitions.finish_missed(session, stream_id, token, now, decision.reason)
        return transitions.finish_failed(session, stream_id, token, now, decision.reason)

    def _report(self, job: Job, decision: Decision) -> RunResult:
        extra = {"stream_id": str(job.stream_id)}
        if decision.next is Next.RETRY:
            assert decision.retry_at is not None and decision.outcome is not None
            log.info(
                "booking %s: %s (%s); retry at %s", job.stream_id, decision.outcome.value,
                decision.reason, decision.retry_at.isoformat(),
                extra={"action": "stream_retry", **extra},
            )  # fmt: skip
        else:
            log.warning(
                "booking %s failed: %s", job.stream_id, decision.reason,
                extra={"action": "stream_failed", **extra},
            )  # fmt: skip
        return ENDED[decision.next]

    def _store(
        self, job: Job, number: int, found: Livestream, outcome: AttemptOutcome, duration: float
    ) -> RunResult:
        """Store the livestream a call returned: the booking is started, or failed if keyless."""
        if found.stream_key is None:
            found = self._with_key(job, found)
        decision = policy.after_livestream(found)
        key = found.stream_key
        ciphertext = self._cipher().encrypt(key) if key is not None else None

        def write(session: Session, now: datetime) -> bool:
            attempts.finish_attempt(
                session, job.stream_id, number, now, outcome,
                duration=duration, livestream_id=found.id, call=found.call,
            )  # fmt: skip
            if decision.state is StreamState.STARTED and ciphertext is not None:
                return transitions.finish_started(
                    session, job.stream_id, job.token, now, found, ciphertext
                )
            return transitions.finish_failed(
                session, job.stream_id, job.token, now, decision.reason, livestream=found
            )

        extra = {"stream_id": str(job.stream_id)}
        if write_with_retries(self.factory, write, RESULT_WRITE_TRIES):
            log.info(
                "livestream %s for booking %s (%s)", found.id, job.stream_id, outcome.value,
                extra={"action": "stream_started", **extra},
            )  # fmt: skip
            return RunResult(outcome.value)
        log.warning(
            "livestream %s was created but the claim on %s was lost; the next claim adopts it",
            found.id, job.stream_id, extra={"action": "claim_lost", **extra},
        )  # fmt: skip
        return RunResult.CLAIM_LOST

    def _cipher(self) -> StreamKeyCipher:
        if self._stream_key_cipher is None:
            self._stream_key_cipher = cipher_for(self.settings, create=True)
        return self._stream_key_cipher

    def _with_key(self, job: Job, found: Livestream) -> Livestream:
        """The livestream with its stream key, asked for by id when the first answer lacked it.

        An adopted livestream comes from the active-livestream answer, whose published example
        has no key. A failure here leaves the key missing; it is never a reason to start again.
        """
        try:
            full = self.client.get_livestream(job.account_id, job.app_id, found.id)
        except UpstreamError as exc:
            log.warning(
                "could not fetch the stream key of livestream %s: %s", found.id, exc,
                extra={"action": "stream_key_fetch_failed", "stream_id": str(job.stream_id)},
            )  # fmt: skip
            return found
        if full.stream_key is None or full.id != found.id:
            return found  # a key for another livestream is worse than none
        return replace(
            found,
            stream_key=full.stream_key,
            ingest_server=found.ingest_server or full.ingest_server,
            playback_url=found.playback_url or full.playback_url,
        )
