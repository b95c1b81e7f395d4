"""What a start run's calls came to, written down: each call ahead, each decision carried out.

The starter (``worker.start.flow``) decides nothing about the database and writes nothing itself:
it asks the recorder to write a call's attempt row ahead of the call (confirming the claim in
the same transaction), and to carry out what ``worker.upstream.policy`` decided after it: the
attempt's outcome and the booking's transition in one transaction, retried if the database blinks.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from models import AttemptAction, StatusSource
from models.db import db_now, write_with_retries
from worker.bookings import observe, transitions
from worker.crypto import StreamKeyCipher, cipher_for
from worker.errors import UpstreamError
from worker.settings import Settings
from worker.start import claims
from worker.start.runs import ENDED, Job, RunResult
from worker.upstream import attempts, pacing, policy
from worker.upstream.policy import StartDecision, StartStep
from worker.upstream.responses import Livestream

log = logging.getLogger(__name__)
T = TypeVar("T")

# Writing a result is retried this many times before the lease and the reconcile step are
# left to recover it: after a 201 the result must not be lost to a passing connection error.
RESULT_WRITE_TRIES = 5


class Recorder:
    """The writes of one process's start runs; ``owner`` is its heartbeat id."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        *,
        owner: uuid.UUID,
        rand: random.Random,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.owner = owner  # named on every claim this process confirms
        self.rand = rand
        self.token_key = pacing.token_hash(settings.upstream.api_token)
        self.backoff = settings.upstream.backoff
        self._stream_key_cipher: StreamKeyCipher | None = None
        # Until when (this process's monotonic clock) a 429 answered here paused the token:
        # the starts this process prepared ahead are not sent into it (worker.start.flow).
        self.paused_here_until = 0.0

    def write(self, write: Callable[[Session, datetime], T]) -> T:
        """One result transaction, retried if the database blinks."""
        return write_with_retries(self.factory, write, RESULT_WRITE_TRIES)

    def write_ahead(
        self,
        job: Job,
        action: AttemptAction,
        close: Callable[[Session, datetime], None] | None = None,
    ) -> int | None:
        """Confirm the claim for one call and write its attempt row; None if the claim is gone.

        ``close`` closes the previous call's attempt in the same transaction.
        """
        with self.factory.begin() as session:
            now = db_now(session)
            if close is not None:
                close(session, now)
            confirmed = claims.confirm_claim(
                session,
                job.stream_id,
                job.token,
                now,
                lease=self.settings.claims.lease,
                owner=self.owner,
            )
            if confirmed is None:
                return None
            number, job.token = confirmed
            if action is AttemptAction.RECONCILE:
                attempts.mark_orphaned(session, job.stream_id, number, now)
            attempts.insert_attempt(session, job.stream_id, number, action, job.token, now)
        return number

    def settle(
        self,
        job: Job,
        number: int,
        action: AttemptAction,
        error: UpstreamError,
        started: float,
        livestream: Livestream | None = None,
    ) -> RunResult:
        """Close a call that raised ``error`` and do what the policy decides; ``livestream``
        is kept on the row (a key fetch failed for it)."""
        duration = time.monotonic() - started

        def write(session: Session, now: datetime) -> StartDecision:
            decision = policy.after_error(
                action,
                error,
                attempts=number,
                now=now,
                deadline=job.deadline,
                window=self.settings.claims.start_window,
                backoff=self.backoff,
                rand=self.rand,
            )
            if decision.pause_until is not None:
                pacing.pause(session, self.token_key, decision.pause_until)
                pause = (decision.pause_until - now).total_seconds()
                self.paused_here_until = max(self.paused_here_until, time.monotonic() + pause)
            assert decision.outcome is not None
            attempts.finish_attempt(
                session,
                job.stream_id,
                number,
                now,
                decision.outcome,
                error=error,
                error_message=policy.error_text(error),
                duration=duration,
            )
            self.end(session, now, job, decision, livestream)
            return decision

        return self.report(job, self.write(write))

    def end(
        self,
        session: Session,
        now: datetime,
        job: Job,
        decision: StartDecision,
        livestream: Livestream | None = None,
    ) -> bool:
        """The booking's transition for a decision that ends the run without a usable
        livestream (``livestream``: one that exists, but without its key yet)."""
        stream_id, token, reason = job.stream_id, job.token, decision.reason
        if decision.next is StartStep.RETRY:
            assert decision.retry_at is not None
            return transitions.finish_retrying(
                session, stream_id, token, now, decision.retry_at, reason, livestream
            )
        if decision.next is StartStep.MISS:
            return transitions.finish_missed(session, stream_id, token, now, reason)
        return transitions.finish_failed(session, stream_id, token, now, reason, livestream)

    def report(self, job: Job, decision: StartDecision) -> RunResult:
        extra = {"stream_id": str(job.stream_id)}
        if decision.next is StartStep.RETRY:
            assert decision.retry_at is not None and decision.outcome is not None
            log.info(
                "booking %s: %s (%s); retry at %s",
                job.stream_id,
                decision.outcome.value,
                decision.reason,
                decision.retry_at.isoformat(),
                extra={"action": "stream_retry", **extra},
            )
        else:
            log.warning(
                "booking %s failed: %s",
                job.stream_id,
                decision.reason,
                extra={"action": "stream_failed", **extra},
            )
        return ENDED[decision.next]

    def finish_store(
        self,
        job: Job,
        found: Livestream,
        result: RunResult,
        close: Callable[[Session, datetime], None],
    ) -> RunResult:
        """Close the last call with ``close`` and end the booking: started, or failed when
        the livestream has no key (never started again: it exists)."""
        decision = policy.after_livestream(found)
        key = found.stream_key
        ciphertext = self.cipher().encrypt(key) if key is not None else None

        def write(session: Session, now: datetime) -> bool:
            close(session, now)
            if decision.next is StartStep.STORE and ciphertext is not None:
                first_check = now + timedelta(seconds=self.settings.cadence.first_check)
                done = transitions.finish_started(
                    session, job.stream_id, job.token, now, found, ciphertext, first_check
                )
                if done and found.status:
                    seen = observe.Observation(found.id, found.status, now, StatusSource.START)
                    if found.status == observe.LIVE:  # live already: started -> live
                        observe.apply(session, job.stream_id, seen, now)
                    else:  # finish_started stored the status: only the timeline is left
                        observe.record(session, job.stream_id, seen, now)
                return done
            return transitions.finish_failed(
                session, job.stream_id, job.token, now, decision.reason, found
            )

        if not self.write(write):
            return self.claim_lost(job, found)
        if decision.next is not StartStep.STORE:
            return self.report(job, decision)
        log.info(
            "livestream %s for booking %s (%s)",
            found.id,
            job.stream_id,
            result.value,
            extra={"action": "stream_started", "livestream_id": found.id},
        )
        return result

    def claim_lost(self, job: Job, found: Livestream) -> RunResult:
        log.warning(
            "livestream %s was created but the claim on %s was lost; the next claim adopts it",
            found.id,
            job.stream_id,
            extra={"action": "claim_lost", "stream_id": str(job.stream_id)},
        )
        return RunResult.CLAIM_LOST

    def cipher(self) -> StreamKeyCipher:
        if self._stream_key_cipher is None:
            self._stream_key_cipher = cipher_for(self.settings, create=True)
        return self._stream_key_cipher
