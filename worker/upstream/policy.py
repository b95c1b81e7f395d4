"""Pure decisions about upstream calls: what an answer means, and what the booking does next.

Nothing here does I/O or reads a clock: every input is an argument, so each decision is a
table test (tests/unit/test_policy_*.py). Two layers:

``classify`` / ``classify_exception`` turn one HTTP answer (or the lack of one) into an
``Outcome``; ``worker.upstream.realtimekit`` turns that into a result or an exception. Outcome kinds
(docs/DESIGN.md "Retries"):
    started    a livestream came back (201 + success + data.id, or the livestream of a read)
    retryable  nothing was created: send the same call again after ``retry_after``
    ambiguous  the request may have created a livestream: reconcile before sending again
    final      the API refused for good; sending it again cannot help

``before_call``, ``after_error``, ``after_reconcile`` and ``after_livestream`` take what a
start run knows at each step and return a ``StartDecision``: start or reconcile now, store a
livestream, retry at an instant (perhaps pausing the token), or end the booking with a reason.
The starter (``worker.start.flow``) only carries decisions out.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx

from models import AttemptAction, AttemptOutcome, StreamState
from worker.errors import AmbiguousError, FinalError, RetryableError, UpstreamError
from worker.settings import Backoff
from worker.upstream.backoff import next_due
from worker.upstream.responses import (
    Livestream,
    error_details,
    header,
    load_json,
    parse_livestream,
    parse_retry_after,
    redact,
    stream_keys,
)

Kind = Literal["started", "retryable", "ambiguous", "final"]

RETRYABLE_STATUSES = frozenset({408, 425, 429})
# Cloudflare's limit is per token across its whole API: a 429 pauses every start that uses
# the token, not only the call that got it (docs/DESIGN.md "Retries").
RATE_LIMITED = 429
# A livestream found on the meeting is ours to adopt only if it was created after (or
# shortly before, allowing for clock skew) our first unclear start call for this booking.
ADOPT_SKEW = timedelta(minutes=5)
# An unclear call must be reconciled even past the deadline, so its retry is due no later
# than this (or the backoff floor, if longer) after the call.
RECONCILE_SOON = 1.0
MAX_ERROR_TEXT = 500
_REFUSED = {
    AttemptAction.START: "refused by the API",
    AttemptAction.RECONCILE: "could not check for a livestream",
    AttemptAction.FETCH_KEY: "could not fetch the livestream's stream key",
}


@dataclass(frozen=True)
class Outcome:
    """The meaning of one upstream answer; ``message`` is short and safe to log."""

    kind: Kind
    status: int | None
    message: str
    retry_after: float | None = None
    code: str | None = None
    upstream_message: str | None = None
    livestream: Livestream | None = None
    # A 2xx whose body said success: true (a stop answers with no livestream in it) ...
    acknowledged: bool = False
    # ... and whose data was null, {} or [] (how a read may say "no livestream").
    empty: bool = False
    # The token's rate limit was hit: every caller of the token must wait.
    pauses_token: bool = False


def classify(
    status: int | None,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: datetime | None = None,
    idempotent: bool = False,
) -> Outcome:
    """Classify one upstream answer to a start (or, with ``idempotent=True``, a read or stop).

    ``idempotent`` turns every ambiguous outcome into a retryable one: resending a read cannot
    create a livestream, so there is nothing to reconcile.
    """
    outcome = _classify(status, body, headers, now or datetime.now(UTC))
    if idempotent and outcome.kind == "ambiguous":
        return replace(outcome, kind="retryable")
    return outcome


def classify_exception(exc: Exception, *, idempotent: bool = False) -> Outcome:
    """Classify a call that raised before a status line arrived.

    Only failures that happen before any byte of the request left are retryable: connecting
    (refused, DNS, TLS handshake, connect timeout) and waiting for a pooled connection.
    Everything after that may have reached the API, so it is ambiguous.
    """
    name = type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return Outcome("retryable", None, f"{name}: nothing was sent")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.InvalidURL):
        # Our request or base URL is malformed; every resend fails the same way.
        return Outcome("final", None, f"{name}: request could not be built")
    kind: Kind = "retryable" if idempotent else "ambiguous"
    if isinstance(exc, httpx.TimeoutException):
        return Outcome(kind, None, f"{name}: no answer in time")
    return Outcome(kind, None, f"{name}: connection failed after sending")


def _classify(
    status: int | None, body: bytes, headers: Mapping[str, str], now: datetime
) -> Outcome:
    if status is None:
        return Outcome("ambiguous", None, "no response")
    doc = load_json(body)
    if 200 <= status < 300:
        return _success(status, doc)
    code, upstream = error_details(doc, body)
    # Stream keys in an error body would otherwise end up in the message.
    upstream = redact(upstream, stream_keys(doc))
    message = f"HTTP {status}" + (f": {upstream}" if upstream else "")
    retry_after = parse_retry_after(header(headers, "retry-after"), now)
    if status in RETRYABLE_STATUSES:
        kind: Kind = "retryable"
    elif status == 409 or status >= 500 or status < 400:
        # 409: the meeting may already stream from our own earlier, unanswered start.
        # 5xx: the API may have created the livestream before failing. 1xx/3xx: unexpected
        # answers from something that did receive the request.
        kind = "ambiguous"
    else:
        kind = "final"
    return Outcome(
        kind, status, message, retry_after, code, upstream, pauses_token=status == RATE_LIMITED
    )


def _success(status: int, doc: Any) -> Outcome:
    # Every field is optional in the schema, so a 2xx proves nothing by itself (contract
    # README): without success and data.id it is a failure whose effect we do not know.
    if not isinstance(doc, dict) or doc.get("success") is not True:
        return Outcome("ambiguous", status, f"HTTP {status} without success: true")
    data = doc.get("data")
    livestream = parse_livestream(data)
    if livestream is None:
        empty = data is None or data == {} or data == []
        message = f"HTTP {status} without data.id"
        return Outcome("ambiguous", status, message, acknowledged=True, empty=empty)
    return Outcome("started", status, f"HTTP {status}", livestream=livestream, acknowledged=True)


def answered_as_asked(operation: str, outcome: Outcome) -> bool:
    """Whether an answer is the one its operation asks for, and so routine: a livestream for a
    start or a read, ``success: true`` for a stop (whose answer carries no livestream)."""
    if operation == "stop":
        return outcome.acknowledged
    return outcome.kind == "started"


# -- what a start run does next ----------------------------------------------------------------


class StartStep(enum.Enum):
    """The step a ``StartDecision`` asks the starter to take."""

    WAIT = "wait"  # not due yet by the database's clock: run again at ``retry_at``
    START = "start"  # send the start call now
    RECONCILE = "reconcile"  # ask for the meeting's active livestream before any start call
    STORE = "store"  # store the livestream: the booking is started (or failed without a key)
    RETRY = "retry"  # the booking is retrying, due again at ``retry_at``
    FAIL = "fail"  # the booking is failed, for ``reason``
    MISS = "miss"  # the booking is missed: its deadline passed before any call was made


@dataclass(frozen=True)
class StartDecision:
    """What to do after one step of a start run.

    ``outcome`` closes the step's attempt row (None: no call was made, or it is closed already);
    ``pause_until`` pauses every start of the token, whatever comes next.
    """

    next: StartStep
    outcome: AttemptOutcome | None = None
    retry_at: datetime | None = None
    reason: str = ""
    pause_until: datetime | None = None
    state: StreamState | None = None  # the booking's state once the livestream is stored


def before_call(
    *,
    now: datetime,
    due_at: datetime,
    deadline: datetime,
    attempts: int,
    last_error: str | None,
    paused_until: datetime | None,
    unclear: bool,
) -> StartDecision:
    """What a run does once it holds the claim, before any call.

    A run whose worker clock runs ahead of the database's waits for the due instant. An
    unclear earlier start call is reconciled whatever the time: a livestream may exist. A
    paused token waits with everyone else; that is no attempt, so nothing is recorded but why.
    """
    if now < due_at:
        return StartDecision(StartStep.WAIT, retry_at=due_at)
    if paused_until is not None and paused_until > now:
        # The booking keeps its due instant, and so its place in the queue: the dispatcher
        # claims nothing while the token is paused, then the oldest first. Moving it to the
        # pause's end put it behind every booking due meanwhile, again at every pause.
        return StartDecision(
            StartStep.RETRY,
            retry_at=due_at,
            reason=f"waiting for the API rate limit until {paused_until.isoformat()}",
        )
    if unclear:
        return StartDecision(StartStep.RECONCILE)
    if now > deadline:
        reason = "start deadline passed"
        reason = f"{reason}; last error: {last_error}" if last_error else reason
        return StartDecision(StartStep.FAIL if attempts else StartStep.MISS, reason=reason)
    return StartDecision(StartStep.START)


def after_error(
    action: AttemptAction,
    error: UpstreamError,
    *,
    attempts: int,
    now: datetime,
    deadline: datetime,
    window: float,
    backoff: Backoff,
    rand: random.Random,
) -> StartDecision:
    """What follows a call that raised ``error``, after ``attempts`` calls for this booking.

    A start is retried until ``deadline``; an unclear one is reconciled even after it. A
    reconcile is a GET, safe to repeat: retried past the deadline, but never more than one
    more ``window`` past it, so that every booking ends with a reason. A stream-key fetch is
    retried until ``deadline``, keeping the livestream it is for.
    """
    text = error_text(error)
    pause = _pause(error, now, backoff)
    if isinstance(error, FinalError):
        reason = f"{_REFUSED[action]}: {text}"
        return StartDecision(StartStep.FAIL, AttemptOutcome.FATAL, reason=reason, pause_until=pause)
    retry_after = error.retry_after if isinstance(error, RetryableError) else None
    if action is AttemptAction.RECONCILE:
        limit = deadline + timedelta(seconds=window)
        if now > limit:
            reason = f"could not learn whether a livestream was created: {text}"
            return StartDecision(
                StartStep.FAIL, AttemptOutcome.RETRYABLE, reason=reason, pause_until=pause
            )
        due = next_due(backoff, attempts, now, limit, retry_after=retry_after, rand=rand)
        return StartDecision(
            StartStep.RETRY,
            AttemptOutcome.RETRYABLE,
            retry_at=due or limit,
            reason=text,
            pause_until=pause,
        )
    due = next_due(backoff, attempts, now, deadline, retry_after=retry_after, rand=rand)
    if isinstance(error, AmbiguousError):
        soon = now + timedelta(seconds=max(backoff.floor, RECONCILE_SOON))
        return StartDecision(
            StartStep.RETRY, AttemptOutcome.AMBIGUOUS, retry_at=due or soon, reason=text
        )
    if due is None:
        reason = f"deadline passed while retrying: {text}"
        return StartDecision(
            StartStep.FAIL, AttemptOutcome.RETRYABLE, reason=reason, pause_until=pause
        )
    return StartDecision(
        StartStep.RETRY, AttemptOutcome.RETRYABLE, retry_at=due, reason=text, pause_until=pause
    )


def after_reconcile(
    found: Livestream | None,
    *,
    name: str | None,
    first_unclear: datetime,
    now: datetime,
    deadline: datetime,
) -> StartDecision:
    """What follows a reconcile that found ``found`` (None: the meeting has no livestream),
    for a booking whose start calls gave the name ``name``.

    A livestream is adopted only when nothing says it is another caller's: it was created
    before our first unclear call (beyond the clock skew), or it carries a name that is not
    the one our calls gave. (Two bookings of one meeting with one name cannot be told apart.)
    """
    if found is None:
        if now > deadline:
            reason = "deadline passed; the earlier unclear call created no livestream"
            return StartDecision(StartStep.FAIL, AttemptOutcome.ABSENT, reason=reason)
        return StartDecision(StartStep.START, AttemptOutcome.ABSENT)
    if found.name is not None and name is not None and found.name != name:
        reason = (
            f"meeting already has livestream {found.id}, named {found.name!r}, not {name!r} as"
            " our calls named it; not adopting another caller's livestream"
        )
        return StartDecision(StartStep.FAIL, AttemptOutcome.FATAL, reason=reason)
    if found.created_at is not None and found.created_at < first_unclear - ADOPT_SKEW:
        reason = (
            f"meeting already has livestream {found.id}, created {found.created_at.isoformat()}"
            " before our first call; not adopting another caller's livestream"
        )
        return StartDecision(StartStep.FAIL, AttemptOutcome.FATAL, reason=reason)
    return StartDecision(StartStep.STORE, AttemptOutcome.ADOPTED)


def after_livestream(found: Livestream) -> StartDecision:
    """How a booking ends once a livestream exists for it.

    Without a stream key nobody can send video, so the booking is not ``started``; but a
    livestream exists for it, so it is never started again either: ops are told why.
    """
    if found.stream_key is not None:
        return StartDecision(StartStep.STORE, state=StreamState.STARTED)
    reason = (
        f"livestream {found.id} exists but the API returned no stream key for it; "
        "not started again (fetch its key upstream or stop it)"
    )
    return StartDecision(StartStep.FAIL, state=StreamState.FAILED, reason=reason)


def error_text(error: UpstreamError) -> str:
    """An upstream error as stored in ``last_error``: the client's messages already name the
    call and the status."""
    return str(error)[:MAX_ERROR_TEXT]


def _pause(error: UpstreamError, now: datetime, backoff: Backoff) -> datetime | None:
    if not (isinstance(error, RetryableError) and error.pauses_token):
        return None
    seconds = error.retry_after if error.retry_after is not None else backoff.cap
    return now + timedelta(seconds=seconds)
