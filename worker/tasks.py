"""Celery tasks, as thin glue: take the process's runtime, call dispatch or starter, log.

A task message carries only ids, ``(stream_id, claim_token)``: never a secret, never a row.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from celery import Task
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from worker import metrics, runtime
from worker.celery import app
from worker.dispatch import tick
from worker.errors import NotDueYet
from worker.follow.flow import TrackResult
from worker.lease.claims import Claim, ClaimKind
from worker.notify import retention
from worker.notify.sender import SendResult
from worker.series import flow as series
from worker.start.rules import Launch
from worker.start.runs import RunResult

log = logging.getLogger(__name__)


def _first_line(exc: SQLAlchemyError) -> str:
    """The driver's own message, first line: SQLAlchemy's adds the statement and a link."""
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]


def _enqueue(claim: Claim) -> None:
    _RUNS[claim.kind].apply_async(args=(str(claim.row_id), str(claim.token)), eta=claim.due_at)


def _launch(group: Launch) -> None:
    """One message for a launch, with no ETA: it is prepared ahead of its instants."""
    launch.apply_async(args=(str(group.token), [str(i) for i in group.stream_ids]))


@app.task(name="livestreams.dispatch_due", ignore_result=True)
def dispatch_due() -> dict[str, int]:
    """Expire, reap and claim due bookings, then enqueue a start for each claim.

    A database that is down costs this tick only: it is logged in one line and the next tick,
    a dispatch interval later, tries again. Nothing was claimed, so nothing is lost.
    """
    current = runtime.current()
    began = time.monotonic()
    try:
        report = tick(current.sessions, current.settings, _enqueue, launch=_launch)
    except SQLAlchemyError as exc:
        log.warning(
            "dispatch tick skipped, database error: %s",
            _first_line(exc),
            extra={"action": "dispatch_db_error"},
        )
        return {"claimed": 0, "reaped": 0, "expired": 0}
    metrics.TICK_DURATION.observe(time.monotonic() - began)
    metrics.CLAIMED.inc(report.claimed)
    metrics.REAPED.inc(report.reaped)
    return {"claimed": report.claimed, "reaped": report.reaped, "expired": report.expired}


# A database blink during a start is retried this often, this soon, before the lease and the
# reaper are left to recover the booking (a lease's worth later).
DB_RETRIES = 10
DB_RETRY_COUNTDOWN = 1.0


def _again(
    task: Task[Any, Any], exc: OperationalError, what: str, action: str, **ids: str
) -> BaseException:
    """Log a run cut short by a database error and send its message again a second later."""
    (ident,) = ids.values()
    log.warning(
        "%s of %s interrupted by a database error, trying again: %s",
        what,
        ident,
        _first_line(exc),
        extra={"action": action, **ids},
    )
    return task.retry(countdown=DB_RETRY_COUNTDOWN, max_retries=DB_RETRIES)


@app.task(name="livestreams.launch", ignore_result=True, bind=True)
def launch(self: Task[Any, Any], claim_token: str, stream_ids: list[str]) -> str:
    """Prepare the starts of one launch and hand them to this process's launch thread, which
    sends each at its instant (worker.start.launch); returns at once.

    A database error before the claims were confirmed changed nothing: the same message is
    sent again a second later. The message carries the claim's token and booking ids only.
    """
    try:
        report = runtime.current().launcher.run(
            uuid.UUID(claim_token), [uuid.UUID(i) for i in stream_ids]
        )
    except OperationalError as exc:
        raise _again(self, exc, "launch", "launch_db_error", claim_token=claim_token) from None
    return str(report)


@app.task(name="livestreams.start_stream", ignore_result=True, bind=True)
def start_stream(self: Task[Any, Any], stream_id: str, claim_token: str) -> str:
    """Start one claimed booking; a no-op unless the claim is still this one.

    If the database fails, the same message is simply sent again a second later: before the
    claim was confirmed nothing was called, and once it was confirmed its token changed, so
    the repeat finds a token that no longer matches and does nothing (the lease and the
    reaper then recover the booking, reconciling the call).
    """
    current, ident, token = runtime.current(), uuid.UUID(stream_id), uuid.UUID(claim_token)
    try:
        result = current.starter.run(ident, token)
    except NotDueYet as exc:  # this worker's clock runs ahead of the database's
        raise self.retry(countdown=exc.seconds, max_retries=DB_RETRIES) from None
    except OperationalError as exc:
        raise _again(self, exc, "start", "start_db_error", stream_id=stream_id) from None
    metrics.STARTS.labels(outcome=result.value).inc()
    if result is RunResult.STALE:
        current.foreign.check(ClaimKind.START, [ident], token)
    return result


@app.task(name="livestreams.track_stream", ignore_result=True, bind=True)
def track_stream(self: Task[Any, Any], stream_id: str, claim_token: str) -> str:
    """Check one started or live booking's livestream, and stop or end it when due; a no-op
    unless the claim is still this one.

    A database error is retried a second later, like a start: the claim's token changed when
    the call was written ahead, so a repeat after that point does nothing, and the row comes
    due again at the end of its lease (the next run checks before it stops anything).
    """
    current, ident, token = runtime.current(), uuid.UUID(stream_id), uuid.UUID(claim_token)
    try:
        result = current.tracker.run(ident, token)
    except OperationalError as exc:
        raise _again(self, exc, "tracking", "track_db_error", stream_id=stream_id) from None
    metrics.TRACK_RUNS.labels(result=result.value).inc()
    if result is TrackResult.STALE:
        current.foreign.check(ClaimKind.TRACK, [ident], token)
    return result


@app.task(name="livestreams.deliver_webhook", ignore_result=True, bind=True)
def deliver_webhook(self: Task[Any, Any], delivery_id: str, claim_token: str) -> str:
    """POST one claimed outbound webhook delivery; a no-op unless the claim is still this one.

    The message carries ids only, never the secret or the body (both stay in the database).
    """
    current, ident, token = runtime.current(), uuid.UUID(delivery_id), uuid.UUID(claim_token)
    try:
        result = current.sender.run(ident, token)
    except OperationalError as exc:
        raise _again(
            self, exc, "webhook delivery", "webhook_db_error", delivery_id=delivery_id
        ) from None
    metrics.WEBHOOK_DELIVERIES.labels(result=result.value).inc()
    if result is SendResult.STALE:
        current.foreign.check(ClaimKind.WEBHOOK, [ident], token)
    return result


@app.task(name="livestreams.prune_webhooks", ignore_result=True)
def prune_webhooks() -> int:
    """Delete the webhook logs past LIVESTREAMS_WEBHOOK_RETENTION_DAYS (hourly, by beat);
    never what is still to be delivered."""
    current = runtime.current()
    deleted = retention.prune(current.sessions, current.settings.webhooks.retention_days)
    if deleted:
        log.info(
            "pruned %d webhook log rows past %d days",
            deleted,
            current.settings.webhooks.retention_days,
            extra={"action": "prune_webhooks", "deleted": deleted},
        )
    return deleted


@app.task(name="livestreams.make_occurrences", ignore_result=True)
def make_occurrences() -> int:
    """Book every active series' occurrences up to LIVESTREAMS_SERIES_HORIZON days ahead (by
    beat); harmless twice, or from two beats at once: a date already booked is skipped."""
    current = runtime.current()
    return series.make_all(current.sessions, current.settings)


# The task that runs each kind of claim (one start of a booking whose launch could not be
# prepared; a status check or stop; a webhook delivery).
_RUNS: dict[ClaimKind, Task[Any, Any]] = {
    ClaimKind.START: start_stream,
    ClaimKind.TRACK: track_stream,
    ClaimKind.WEBHOOK: deliver_webhook,
}
