"""The track task's flow: check the meeting's active livestream, then stop it, end it, or wait.

Each call follows the start's three steps (worker.start.flow): one transaction confirms the claim
and writes the attempt ahead of the call; the call, outside any transaction; one transaction
writes the attempt's outcome and the row's change together. A stop is sent only after a check
in the same run found our livestream active, and an unclear stop is checked again by the next
run rather than repeated. What to do is decided in ``worker.follow.rules``; the SQL is in
``worker.follow.claims`` (the row), ``worker.upstream.attempts`` and ``worker.bookings.observe``
(statuses).
"""

from __future__ import annotations

import enum
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import (
    AttemptAction,
    AttemptOutcome,
    EndReason,
    ProviderWebhook,
    StartAttempt,
    StatusSource,
)
from models.db import db_now, write_with_retries
from worker import logformat
from worker.bookings import observe
from worker.errors import AmbiguousError, FinalError, RetryableError, UpstreamError
from worker.follow import claims as follow_claims
from worker.follow import rules as follow_rules
from worker.follow.rules import Facts, FollowDecision, FollowStep
from worker.settings import Settings
from worker.start.recorder import RESULT_WRITE_TRIES
from worker.upstream import attempts, pacing, policy
from worker.upstream.realtimekit import Livestream, RealtimeKitClient

log = logging.getLogger(__name__)


class TrackResult(enum.StrEnum):
    """What one run of the track task came to (the task logs it)."""

    CHECKED = "checked"  # ours is active; checked again later
    STOPPED = "stopped"  # our stop call stopped it: ended
    ENDED = "ended"  # no longer ours upstream: ended
    RETRYING = "retrying"  # a call failed; the row is due again soon
    STALE = "stale"  # the claim was not this run's: nothing done


@dataclass
class _Run:
    stream_id: uuid.UUID
    token: uuid.UUID
    began: datetime
    facts: Facts
    account_id: str
    app_id: str
    meeting_id: str
    status: str | None
    webhooks_flowing: bool
    stop_sent: bool


class Tracker:
    """Runs track tasks for one process."""

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
        self.owner = owner
        self.rand = rand or random.Random()
        self.cadence = settings.cadence
        self.token_key = pacing.token_hash(settings.upstream.api_token)

    def run(self, stream_id: uuid.UUID, token: uuid.UUID) -> TrackResult:
        """Check, and stop or end, the row this claim holds, if it still holds it."""
        with logformat.context(stream_id=str(stream_id)):
            return self._run(stream_id, token)

    def _run(self, stream_id: uuid.UUID, token: uuid.UUID) -> TrackResult:
        begun = self._write_ahead(stream_id, token, AttemptAction.STATUS)
        if begun is None:
            return TrackResult.STALE
        run, number = begun
        started = time.monotonic()
        try:
            found = self.client.get_active_livestream(run.account_id, run.app_id, run.meeting_id)
        except UpstreamError as exc:
            return self._failed(run, number, exc, started, stopping=None)
        except Exception as exc:  # noqa: BLE001 - any surprise is an unclear call, kept
            return self._failed(run, number, _unexpected(exc), started, stopping=None)
        duration = time.monotonic() - started
        decision = follow_rules.after_check(
            run.facts,
            found,
            run.began,
            self.cadence,
            webhooks_flowing=run.webhooks_flowing,
            stop_sent=run.stop_sent,
        )
        close = self._close_check(run, number, found, duration)
        if decision.next is FollowStep.END:
            assert decision.end_reason is not None
            return self._end(run, decision.end_reason, close)
        if decision.next is FollowStep.CONTINUE:
            return self._continue(run, decision, close)
        assert decision.end_reason is not None
        return self._stop(run, decision.end_reason, close)

    # -- the steps --------------------------------------------------------------------------
    def _write_ahead(
        self,
        stream_id: uuid.UUID,
        token: uuid.UUID,
        action: AttemptAction,
        close: Callable[[Session, datetime], None] | None = None,
    ) -> tuple[_Run, int] | None:
        with self.factory.begin() as session:
            now = db_now(session)
            if close is not None:
                close(session, now)
            confirmed = follow_claims.confirm(
                session, stream_id, token, now, lease=self.settings.claims.lease, owner=self.owner
            )
            if confirmed is None:
                return None
            renewed, row = confirmed
            if action is AttemptAction.STATUS:
                # A call of a run that vanished (killed worker) must not look in flight for
                # ever: its effect is unknown, which is what this run's check is for.
                attempts.mark_orphaned(session, stream_id, row.attempts, now)
            attempts.insert_attempt(session, stream_id, row.attempts, action, renewed, now)
            run = _Run(
                stream_id=stream_id,
                token=renewed,
                began=now,
                facts=Facts(
                    state=row.state,
                    livestream_id=row.livestream_id or "",
                    started_at=row.started_at or now,
                    live_at=row.live_at,
                    ends_at=row.ends_at,
                    stop_requested_at=row.stop_requested_at,
                    problem=row.problem,
                ),
                account_id=row.account_id,
                app_id=row.app_id,
                meeting_id=str(row.meeting_id),
                status=row.livestream_status,
                webhooks_flowing=action is AttemptAction.STATUS and self._flowing(session, now),
                stop_sent=action is AttemptAction.STATUS and _stop_sent(session, stream_id),
            )
        return run, row.attempts

    def _flowing(self, session: Session, now: datetime) -> bool:
        last = session.scalar(select(func.max(ProviderWebhook.received_at)))
        return last is not None and now - last <= timedelta(
            seconds=self.settings.cadence.webhooks_fresh
        )

    def _close_check(
        self, run: _Run, number: int, found: Livestream | None, duration: float
    ) -> Callable[[Session, datetime], None]:
        """Close the status call and apply what it saw, in whichever transaction comes next."""
        ours = found is not None and found.id == run.facts.livestream_id

        def close(session: Session, now: datetime) -> None:
            message = None
            if found is not None and not ours:
                message = f"the meeting's active livestream is another one ({found.id})"
            attempts.finish_attempt(
                session,
                run.stream_id,
                number,
                now,
                AttemptOutcome.OBSERVED if ours else AttemptOutcome.ABSENT,
                error_message=message,
                duration=duration,
                livestream_id=found.id if found is not None else None,
                call=found.call if found is not None else None,
            )
            if ours and found is not None and found.status:
                # A status the docs do not list is stored as it came: a new value must not
                # stop the tracking of a stream.
                seen = observe.Observation(found.id, found.status, now, StatusSource.POLL)
                observe.apply(session, run.stream_id, seen, now, keep=found.status != run.status)

        return close

    def _continue(
        self, run: _Run, decision: FollowDecision, close: Callable[[Session, datetime], None]
    ) -> TrackResult:
        assert decision.due_at is not None
        due_at = decision.due_at

        def write(session: Session, now: datetime) -> bool:
            close(session, now)
            if decision.pause_until is not None:
                pacing.pause(session, self.token_key, decision.pause_until)
            return follow_claims.finish(
                session,
                run.stream_id,
                run.token,
                now,
                due_at=due_at,
                began=run.began,
                problem=decision.problem,
                reason=decision.reason,
            )

        if not self._write(write):
            return TrackResult.STALE
        if decision.problem is not None:
            log.warning(
                "booking %s flagged %s%s",
                run.stream_id,
                decision.problem.value,
                f": {decision.reason}" if decision.reason else "",
                extra={
                    "action": "stream_flagged",
                    "stream_id": str(run.stream_id),
                    "problem": decision.problem.value,
                },
            )
        return TrackResult.RETRYING if decision.reason else TrackResult.CHECKED

    def _end(
        self, run: _Run, reason: EndReason, close: Callable[[Session, datetime], None]
    ) -> TrackResult:
        def write(session: Session, now: datetime) -> bool:
            close(session, now)
            return follow_claims.end(session, run.stream_id, run.token, now, reason)

        if not self._write(write):
            return TrackResult.STALE
        log.info(
            "livestream %s of booking %s ended (%s)",
            run.facts.livestream_id,
            run.stream_id,
            reason.value,
            extra={"action": "stream_ended", "livestream_id": run.facts.livestream_id},
        )
        return TrackResult.STOPPED if reason is not EndReason.ENDED_UPSTREAM else TrackResult.ENDED

    def _stop(
        self, run: _Run, reason: EndReason, close: Callable[[Session, datetime], None]
    ) -> TrackResult:
        begun = self._write_ahead(run.stream_id, run.token, AttemptAction.STOP, close)
        if begun is None:
            return TrackResult.STALE
        stop_run, number = begun
        stop_run.stop_sent = True
        started = time.monotonic()
        try:
            self.client.stop_active_livestream(run.account_id, run.app_id, run.meeting_id)
        except UpstreamError as exc:
            return self._failed(stop_run, number, exc, started, stopping=reason)
        except Exception as exc:  # noqa: BLE001
            return self._failed(stop_run, number, _unexpected(exc), started, stopping=reason)
        duration = time.monotonic() - started

        def close_stop(session: Session, now: datetime) -> None:
            attempts.finish_attempt(
                session,
                run.stream_id,
                number,
                now,
                AttemptOutcome.STOPPED,
                duration=duration,
                livestream_id=run.facts.livestream_id,
            )

        return self._end(stop_run, reason, close_stop)

    def _failed(
        self,
        run: _Run,
        number: int,
        error: UpstreamError,
        started: float,
        *,
        stopping: EndReason | None,
    ) -> TrackResult:
        duration = time.monotonic() - started

        def write(session: Session, now: datetime) -> FollowDecision:
            failures = _stop_failures(session, run.stream_id) if stopping is not None else 0
            decision = follow_rules.after_error(
                run.facts,
                error,
                now,
                self.cadence,
                stopping=stopping,
                stop_failures=failures,
                rand=self.rand,
            )
            if decision.pause_until is not None:
                pacing.pause(session, self.token_key, decision.pause_until)
            attempts.finish_attempt(
                session,
                run.stream_id,
                number,
                now,
                _outcome(error),
                error=error,
                error_message=policy.error_text(error),
                duration=duration,
            )
            assert decision.due_at is not None
            follow_claims.finish(
                session,
                run.stream_id,
                run.token,
                now,
                due_at=decision.due_at,
                began=run.began,
                problem=decision.problem,
                reason=decision.reason,
            )
            return decision

        decision = self._write(write)
        log.info(
            "booking %s: %s failed (%s); next at %s",
            run.stream_id,
            "stop" if stopping is not None else "status check",
            error,
            decision.due_at.isoformat() if decision.due_at else "-",
            extra={"action": "track_retry", "stream_id": str(run.stream_id)},
        )
        return TrackResult.RETRYING

    def _write(self, write: Callable[[Session, datetime], Any]) -> Any:
        return write_with_retries(self.factory, write, RESULT_WRITE_TRIES)


def _outcome(error: UpstreamError) -> AttemptOutcome:
    if isinstance(error, RetryableError):
        return AttemptOutcome.RETRYABLE
    if isinstance(error, FinalError):
        return AttemptOutcome.FATAL
    return AttemptOutcome.AMBIGUOUS


def _unexpected(exc: Exception) -> UpstreamError:
    return AmbiguousError(f"unexpected error during the call: {type(exc).__name__}")


_A = StartAttempt


def _stop_sent(session: Session, stream_id: uuid.UUID) -> bool:
    """A stop call of ours was sent for this row before (whatever came of it)."""
    query = select(_A.id).where(_A.stream_id == stream_id, _A.action == AttemptAction.STOP.value)
    return session.scalar(query.limit(1)) is not None


def _stop_failures(session: Session, stream_id: uuid.UUID) -> int:
    query = select(func.count()).where(
        _A.stream_id == stream_id,
        _A.action == AttemptAction.STOP.value,
        _A.outcome != AttemptOutcome.STOPPED.value,
    )
    return session.scalar(query) or 0
