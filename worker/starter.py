"""The start task's logic: re-check the claim, write the attempt ahead, call, store the result.

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
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from models import AttemptAction, AttemptOutcome, ScheduledStream, StartAttempt, StreamState
from models.db import db_now
from worker import claims, pacing
from worker.backoff import Backoff, next_due
from worker.crypto import StreamKeyCipher, cipher_for
from worker.errors import AmbiguousError, FinalError, RetryableError, UpstreamError
from worker.realtimekit import Livestream, RealtimeKitClient
from worker.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# A livestream found on the meeting is ours to adopt only if it was created after (or
# shortly before, allowing for clock skew) our first unclear start call for this booking.
ADOPT_SKEW = timedelta(minutes=5)
# Writing a result after a 201 is retried this many times before the lease and the
# reconcile step are left to recover it.
RESULT_WRITE_TRIES = 5
ORPHANED = "no outcome was recorded: the run making this call stopped before it could write one"


@dataclass
class Job:
    """What one run needs from the row, read under the claim. ``token`` follows each renewal."""

    stream_id: uuid.UUID
    token: uuid.UUID
    account_id: str
    app_id: str
    meeting_id: str
    name: str | None
    width: int | None
    height: int | None
    deadline: datetime
    first_unclear: datetime | None  # sent_at of the first start call whose outcome is unknown

    @classmethod
    def of(
        cls, row: Any, stream_id: uuid.UUID, token: uuid.UUID, *, first_unclear: datetime | None
    ) -> Job:
        """From a booking's row (ORM object or result row: the same attribute names)."""
        return cls(
            stream_id=stream_id,
            token=token,
            account_id=row.account_id,
            app_id=row.app_id,
            meeting_id=str(row.meeting_id),
            name=row.name,
            width=row.video_width,
            height=row.video_height,
            deadline=row.start_deadline,
            first_unclear=first_unclear,
        )


class Starter:
    """Runs start tasks for one process: a session factory, settings and an API client."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        client: RealtimeKitClient,
        rand: random.Random | None = None,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.client = client
        self.rand = rand or random.Random()
        self.token_key = pacing.token_hash(settings.api_token)
        self.backoff = Backoff(settings.backoff_base, settings.backoff_cap, settings.backoff_floor)
        self._stream_key_cipher: StreamKeyCipher | None = None

    def run(self, stream_id: uuid.UUID, token: uuid.UUID) -> str:
        """Do what the claim asks; returns a word for the log: started, retrying, failed, ..."""
        plain = self._begin_plain_start(stream_id, token)
        if plain is not None:
            return self._call_start(*plain)
        job = self._load(stream_id, token)
        if isinstance(job, str):
            return job
        if job.first_unclear is not None:
            found = self._reconcile(job)
            if found != "absent":
                return found
        return self._start(job)

    # -- the plain case: claim confirmed and attempt written in one transaction ---------------

    def _begin_plain_start(self, stream_id: uuid.UUID, token: uuid.UUID) -> tuple[Job, int] | None:
        """Steps 0 and 1 together when nothing needs a closer look; None when something does."""
        with self.factory.begin() as session:
            now = db_now(session)
            confirmed = claims.confirm_plain_start(
                session, stream_id, token, now,
                lease=self.settings.lease, token_key=self.token_key,
            )  # fmt: skip
            if confirmed is None:
                return None
            renewed, row = confirmed
            job = Job.of(row, stream_id, renewed, first_unclear=None)
            _insert_attempt(session, job, row.attempts, AttemptAction.START, now)
        return job, row.attempts

    # -- step 0: is the claim still ours, and what must happen first --------------------------

    def _load(self, stream_id: uuid.UUID, token: uuid.UUID) -> Job | str:
        with self.factory.begin() as session:
            now = db_now(session)
            row = session.get(ScheduledStream, stream_id)
            if row is None or row.state != StreamState.STARTING or row.claim_token != token:
                return "stale"  # a replayed message, or the reaper gave the row to someone else
            unclear = session.scalar(
                select(StartAttempt.sent_at)
                .where(StartAttempt.stream_id == stream_id, claims.UNCLEAR_START_CALL)
                .order_by(StartAttempt.number)
                .limit(1)
            )
            job = Job.of(row, stream_id, token, first_unclear=unclear)
            paused = pacing.paused_until(session, self.token_key, now)
            if paused is not None:
                # Another task got a 429 for this token: wait with everyone else. Not an
                # attempt, so nothing is recorded but the new due instant.
                claims.finish(
                    session, stream_id, token, now,
                    state=StreamState.RETRYING.value, due_at=paused,
                    last_error=f"waiting for the API rate limit until {paused.isoformat()}",
                )  # fmt: skip
                return "paused"
            if unclear is None and now > row.start_deadline:
                state = StreamState.FAILED if row.attempts else StreamState.MISSED
                claims.finish(
                    session, stream_id, token, now, state=state.value,
                    last_error=_deadline_text(row.last_error),
                )  # fmt: skip
                return state.value
        return job

    # -- reconcile: did an unclear call create a livestream? ----------------------------------

    def _reconcile(self, job: Job) -> str:
        number = self._write_ahead(job, AttemptAction.RECONCILE)
        if number is None:
            return "stale"
        started = time.monotonic()
        try:
            found = self.client.get_active_livestream(job.account_id, job.app_id, job.meeting_id)
        except UpstreamError as exc:
            return self._after_reconcile_error(job, number, exc, time.monotonic() - started)
        duration = time.monotonic() - started
        if found is None:
            self._record(job, number, AttemptOutcome.ABSENT, duration=duration)
            if self._past(job.deadline):
                return self._fail(
                    job, number, "deadline passed; the earlier unclear call created no livestream"
                )
            return "absent"
        assert job.first_unclear is not None
        if found.created_at is not None and found.created_at < job.first_unclear - ADOPT_SKEW:
            return self._fail(
                job,
                number,
                f"meeting already has livestream {found.id}, created {found.created_at.isoformat()}"
                " before our first call; not adopting another caller's livestream",
                outcome=AttemptOutcome.FATAL,
                duration=duration,
            )
        return self._store(job, number, found, AttemptOutcome.ADOPTED, duration)

    def _after_reconcile_error(
        self, job: Job, number: int, exc: UpstreamError, duration: float
    ) -> str:
        if isinstance(exc, FinalError):
            return self._fail(
                job, number, f"could not check for a livestream: {exc}",
                outcome=AttemptOutcome.FATAL, error=exc, duration=duration,
            )  # fmt: skip
        # A GET is safe to repeat, so any other failure is simply retried. It may run past the
        # start deadline, but never past a second window: a booking must end with a reason.
        limit = job.deadline + timedelta(seconds=self.settings.start_window)
        due = self._next_due(job, exc, limit) or limit
        if self._past(limit):
            return self._fail(
                job, number, f"could not learn whether a livestream was created: {exc}",
                outcome=AttemptOutcome.RETRYABLE, error=exc, duration=duration,
            )  # fmt: skip
        return self._retry(job, number, AttemptOutcome.RETRYABLE, exc, due, duration)

    # -- start ---------------------------------------------------------------------------------

    def _start(self, job: Job) -> str:
        number = self._write_ahead(job, AttemptAction.START)
        if number is None:
            return "stale"
        return self._call_start(job, number)

    def _call_start(self, job: Job, number: int) -> str:
        """Step 2 and 3 of a start: the call, whose attempt row is already written."""
        started = time.monotonic()
        try:
            result = self.client.start_livestream(
                job.account_id, job.app_id, job.meeting_id,
                name=job.name, width=job.width, height=job.height,
            )  # fmt: skip
        except RetryableError as exc:
            duration = time.monotonic() - started
            if exc.status == 429:
                self._pause(exc.retry_after)
            due = self._next_due(job, exc, job.deadline)
            if due is None:
                return self._fail(
                    job, number, f"deadline passed while retrying: {exc}",
                    outcome=AttemptOutcome.RETRYABLE, error=exc, duration=duration,
                )  # fmt: skip
            return self._retry(job, number, AttemptOutcome.RETRYABLE, exc, due, duration)
        except AmbiguousError as exc:
            # Maybe created: the next run reconciles first. That run must happen even past
            # the deadline, so it is due no later than the backoff's floor after it.
            due = self._next_due(job, exc, job.deadline) or self._soon()
            return self._retry(
                job, number, AttemptOutcome.AMBIGUOUS, exc, due, time.monotonic() - started
            )
        except FinalError as exc:
            return self._fail(
                job, number, f"refused by the API: {exc}",
                outcome=AttemptOutcome.FATAL, error=exc, duration=time.monotonic() - started,
            )  # fmt: skip
        return self._store(job, number, result, AttemptOutcome.STARTED, time.monotonic() - started)

    # -- writes --------------------------------------------------------------------------------

    def _write_ahead(self, job: Job, action: AttemptAction) -> int | None:
        with self.factory.begin() as session:
            now = db_now(session)
            confirmed = claims.confirm_claim(
                session, job.stream_id, job.token, now, lease=self.settings.lease
            )
            if confirmed is None:
                return None
            number, job.token = confirmed
            if action is AttemptAction.RECONCILE:
                # Calls left without an outcome belong to runs whose claim is gone (killed
                # worker, expired lease): say so, rather than leave them looking in flight.
                session.execute(
                    update(StartAttempt)
                    .where(
                        StartAttempt.stream_id == job.stream_id,
                        StartAttempt.number < number,
                        StartAttempt.outcome.is_(None),
                    )
                    .values(
                        outcome=AttemptOutcome.AMBIGUOUS.value,
                        finished_at=now,
                        error_message=ORPHANED,
                    )
                )
            _insert_attempt(session, job, number, action, now)
        return number

    def _store(
        self, job: Job, number: int, found: Livestream, outcome: AttemptOutcome, duration: float
    ) -> str:
        if found.stream_key is None:
            found = self._with_key(job, found)
        cipher = self._cipher()
        keyed = found.stream_key is not None
        ciphertext = cipher.encrypt(found.stream_key) if found.stream_key is not None else None
        # Without a stream key nobody can send video, so the booking is not `started`; but a
        # livestream exists for it, so it is never started again either: ops are told why.
        state, error = (
            (StreamState.STARTED, None)
            if keyed
            else (
                StreamState.FAILED,
                f"livestream {found.id} exists but the API returned no stream key for it; "
                "not started again (fetch its key upstream or stop it)",
            )
        )

        def write(session: Session, now: datetime) -> bool:
            self._finish_attempt(
                session, now, job, number, outcome, duration=duration, livestream_id=found.id,
                status=found.call.status if found.call else None,
                ray_id=found.call.ray_id if found.call else None,
            )  # fmt: skip
            return claims.finish(
                session, job.stream_id, job.token, now,
                state=state.value, livestream_id=found.id,
                ingest_server=found.ingest_server, playback_url=found.playback_url,
                stream_key_ciphertext=ciphertext, livestream_status=found.status,
                started_at=now if keyed else None, last_error=error,
            )  # fmt: skip

        if self._write_hard(write):
            log.info(
                "livestream %s for booking %s (%s)", found.id, job.stream_id, outcome.value,
                extra={"action": "stream_started", "stream_id": str(job.stream_id)},
            )  # fmt: skip
            return outcome.value
        log.warning(
            "livestream %s was created but the claim on %s was lost; the next claim adopts it",
            found.id, job.stream_id,
            extra={"action": "claim_lost", "stream_id": str(job.stream_id)},
        )  # fmt: skip
        return "claim-lost"

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

    def _retry(
        self,
        job: Job,
        number: int,
        outcome: AttemptOutcome,
        exc: UpstreamError,
        due: datetime,
        duration: float,
    ) -> str:
        def write(session: Session, now: datetime) -> bool:
            self._finish_attempt(session, now, job, number, outcome, error=exc, duration=duration)
            return claims.finish(
                session, job.stream_id, job.token, now,
                state=StreamState.RETRYING.value, due_at=due, last_error=_error_text(exc),
            )  # fmt: skip

        self._write_hard(write)
        log.info(
            "booking %s: %s (%s); retry at %s", job.stream_id, outcome.value, exc, due.isoformat(),
            extra={"action": "stream_retry", "stream_id": str(job.stream_id)},
        )  # fmt: skip
        return "retrying"

    def _fail(
        self,
        job: Job,
        number: int,
        reason: str,
        *,
        outcome: AttemptOutcome | None = None,
        error: UpstreamError | None = None,
        duration: float | None = None,
    ) -> str:
        def write(session: Session, now: datetime) -> bool:
            if outcome is not None:
                self._finish_attempt(
                    session, now, job, number, outcome, error=error, duration=duration
                )
            return claims.finish(
                session, job.stream_id, job.token, now,
                state=StreamState.FAILED.value, last_error=reason,
            )  # fmt: skip

        self._write_hard(write)
        log.warning(
            "booking %s failed: %s", job.stream_id, reason,
            extra={"action": "stream_failed", "stream_id": str(job.stream_id)},
        )  # fmt: skip
        return "failed"

    def _record(self, job: Job, number: int, outcome: AttemptOutcome, **kw: Any) -> None:
        def write(session: Session, now: datetime) -> bool:
            self._finish_attempt(session, now, job, number, outcome, **kw)
            return True

        self._write_hard(write)

    def _finish_attempt(
        self,
        session: Session,
        now: datetime,
        job: Job,
        number: int,
        outcome: AttemptOutcome,
        *,
        error: UpstreamError | None = None,
        duration: float | None = None,
        livestream_id: str | None = None,
        status: int | None = None,
        ray_id: str | None = None,
    ) -> None:
        session.connection().execute(
            _FINISH_ATTEMPT,
            {
                "p_stream_id": job.stream_id,
                "p_number": number,
                "v_finished_at": now,
                "v_outcome": outcome.value,
                "v_http_status": error.status if error is not None else status,
                "v_error_code": error.code if error is not None else None,
                "v_error_message": _error_text(error) if error is not None else None,
                "v_ray_id": error.ray_id if error is not None else ray_id,
                "v_duration": round(duration, 4) if duration is not None else None,
                "v_livestream_id": livestream_id,
            },
        )

    def _write_hard(self, write: Callable[[Session, datetime], T]) -> T:
        """Run one result transaction, retrying a database that blinks.

        After a 201 the result must not be lost to a passing connection error; if every try
        fails, the attempt row keeps no outcome and the next claim reconciles it.
        """
        for attempt in range(1, RESULT_WRITE_TRIES + 1):
            try:
                with self.factory.begin() as session:
                    return write(session, db_now(session))
            except OperationalError:
                if attempt == RESULT_WRITE_TRIES:
                    raise
                log.warning(
                    "database error writing a result; trying again",
                    extra={"action": "result_write_retry"},
                )
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def _pause(self, retry_after: float | None) -> None:
        seconds = retry_after if retry_after is not None else self.settings.backoff_cap
        with self.factory.begin() as session:
            now = db_now(session)
            pacing.pause(session, self.token_key, now + timedelta(seconds=seconds))

    def _next_due(self, job: Job, exc: UpstreamError, limit: datetime) -> datetime | None:
        with self.factory() as session:
            failures = session.scalar(
                select(ScheduledStream.attempts).where(ScheduledStream.id == job.stream_id)
            )
            now = db_now(session)
        retry_after = exc.retry_after if isinstance(exc, RetryableError) else None
        return next_due(
            self.backoff, failures or 1, now, limit, retry_after=retry_after, rand=self.rand
        )

    def _soon(self) -> datetime:
        with self.factory() as session:
            return db_now(session) + timedelta(seconds=max(self.settings.backoff_floor, 1.0))

    def _past(self, instant: datetime) -> bool:
        with self.factory() as session:
            return db_now(session) > instant


def _insert_attempt(
    session: Session, job: Job, number: int, action: AttemptAction, now: datetime
) -> None:
    """The attempt row, written in the transaction that confirms the claim for its call."""
    session.connection().execute(
        _INSERT_ATTEMPT,
        {
            "stream_id": job.stream_id,
            "number": number,
            "action": action.value,
            "claim_token": job.token,
            "sent_at": now,
        },
    )


# Built once: each run only binds values.
_INSERT_ATTEMPT = insert(StartAttempt)
_RESULT_COLUMNS = (
    "finished_at", "outcome", "http_status", "error_code", "error_message", "ray_id",
    "duration", "livestream_id",
)  # fmt: skip
_FINISH_ATTEMPT = (
    update(StartAttempt)
    .where(
        StartAttempt.stream_id == bindparam("p_stream_id"),
        StartAttempt.number == bindparam("p_number"),
    )
    .values({column: bindparam(f"v_{column}") for column in _RESULT_COLUMNS})
)


def _error_text(exc: UpstreamError) -> str:
    return str(exc)[:500]  # the client's messages already name the call and the status


def _deadline_text(previous: str | None) -> str:
    reason = "start deadline passed"
    return f"{reason}; last error: {previous}" if previous else reason
