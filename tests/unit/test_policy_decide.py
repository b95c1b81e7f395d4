# ruff: noqa: E501  (one table row per line reads best)
"""Table tests of what a start run does next (worker.upstream.policy): no sockets, no clock, no database.

Each row is docs/DESIGN.md "Retries" and "Exactly one start per booking" for one situation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models import AttemptAction, AttemptOutcome, StreamState
from tests.fixed_random import Fixed
from worker.errors import AmbiguousError, FinalError, RetryableError, UpstreamError
from worker.settings import Backoff, Secret
from worker.upstream import policy
from worker.upstream.policy import StartDecision, StartStep
from worker.upstream.responses import Livestream

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
DEADLINE = NOW + timedelta(minutes=10)
WINDOW = 900.0
BACKOFF = Backoff(base=1.0, cap=60.0, floor=0.5)
START, RECONCILE = AttemptAction.START, AttemptAction.RECONCILE


def s(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def decide(
    action: AttemptAction,
    error: UpstreamError,
    *,
    attempts: int = 1,
    now: datetime = NOW,
    deadline: datetime = DEADLINE,
) -> StartDecision:
    return policy.after_error(
        action, error, attempts=attempts, now=now, deadline=deadline,
        window=WINDOW, backoff=BACKOFF, rand=Fixed(1.0),
    )  # fmt: skip


RATE_LIMITED = RetryableError("start: HTTP 429", status=429, retry_after=30.0, pauses_token=True)
RATE_LIMITED_NO_HEADER = RetryableError("start: HTTP 429", status=429, pauses_token=True)
TIMEOUT = RetryableError("start: HTTP 408", status=408)
REFUSED = FinalError("start: HTTP 422: name is invalid", status=422)
UNCLEAR = AmbiguousError("start: HTTP 502", status=502)


@pytest.mark.parametrize(
    ("action", "error", "attempts", "now", "expected"),
    [
        # A retryable start: exponential backoff (full draw: base * 2^(n-1)) until the deadline.
        (START, TIMEOUT, 1, NOW, StartDecision(StartStep.RETRY, AttemptOutcome.RETRYABLE, s(1), "start: HTTP 408")),
        (START, TIMEOUT, 4, NOW, StartDecision(StartStep.RETRY, AttemptOutcome.RETRYABLE, s(8), "start: HTTP 408")),
        (START, TIMEOUT, 30, NOW, StartDecision(StartStep.RETRY, AttemptOutcome.RETRYABLE, s(60), "start: HTTP 408")),
        (START, TIMEOUT, 1, DEADLINE, StartDecision(StartStep.FAIL, AttemptOutcome.RETRYABLE, reason="deadline passed while retrying: start: HTTP 408")),
        # Thousands of attempts (2 ** 4999 overflows a float): still the cap, or failed past the deadline.
        (START, TIMEOUT, 5000, NOW, StartDecision(StartStep.RETRY, AttemptOutcome.RETRYABLE, s(60), "start: HTTP 408")),
        (START, TIMEOUT, 5000, DEADLINE + timedelta(seconds=1), StartDecision(StartStep.FAIL, AttemptOutcome.RETRYABLE, reason="deadline passed while retrying: start: HTTP 408")),
        # A 429 pauses the whole token until retry-after (or the backoff cap without one).
        (START, RATE_LIMITED, 1, NOW, StartDecision(StartStep.RETRY, AttemptOutcome.RETRYABLE, s(30), "start: HTTP 429", s(30))),
        (START, RATE_LIMITED_NO_HEADER, 1, NOW, StartDecision(StartStep.RETRY, AttemptOutcome.RETRYABLE, s(1), "start: HTTP 429", s(60))),
        (START, RATE_LIMITED, 1, DEADLINE - timedelta(seconds=10), StartDecision(StartStep.FAIL, AttemptOutcome.RETRYABLE, reason="deadline passed while retrying: start: HTTP 429", pause_until=DEADLINE + timedelta(seconds=20))),
        # Refused for good: failed at once, whatever the time.
        (START, REFUSED, 1, NOW, StartDecision(StartStep.FAIL, AttemptOutcome.FATAL, reason="refused by the API: start: HTTP 422: name is invalid")),
        # Unclear: retried (the next run reconciles first), even past the deadline.
        (START, UNCLEAR, 2, NOW, StartDecision(StartStep.RETRY, AttemptOutcome.AMBIGUOUS, s(2), "start: HTTP 502")),
        (START, UNCLEAR, 2, DEADLINE, StartDecision(StartStep.RETRY, AttemptOutcome.AMBIGUOUS, DEADLINE + timedelta(seconds=1), "start: HTTP 502")),
        # A reconcile (a GET) is retried past the deadline, up to one more window.
        (RECONCILE, UNCLEAR, 3, DEADLINE, StartDecision(StartStep.RETRY, AttemptOutcome.RETRYABLE, DEADLINE + timedelta(seconds=4), "start: HTTP 502")),
        (RECONCILE, TIMEOUT, 3, DEADLINE + timedelta(seconds=WINDOW + 1), StartDecision(StartStep.FAIL, AttemptOutcome.RETRYABLE, reason="could not learn whether a livestream was created: start: HTTP 408")),
        (RECONCILE, REFUSED, 1, NOW, StartDecision(StartStep.FAIL, AttemptOutcome.FATAL, reason="could not check for a livestream: start: HTTP 422: name is invalid")),
    ],
)  # fmt: skip
def test_after_error(action, error, attempts, now, expected) -> None:
    assert decide(action, error, attempts=attempts, now=now) == expected


def test_a_reconcile_near_its_limit_is_due_at_the_limit() -> None:
    limit = DEADLINE + timedelta(seconds=WINDOW)
    got = decide(RECONCILE, TIMEOUT, attempts=10, now=limit - timedelta(seconds=5))
    assert got == StartDecision(StartStep.RETRY, AttemptOutcome.RETRYABLE, limit, "start: HTTP 408")


def test_the_reason_is_cut_to_what_is_stored() -> None:
    got = decide(START, RetryableError("x" * 2000, status=408))
    assert len(got.reason) == policy.MAX_ERROR_TEXT


PAUSED_UNTIL = s(30)


@pytest.mark.parametrize(
    ("now", "attempts", "last_error", "paused", "unclear", "expected"),
    [
        (NOW, 0, None, None, False, StartDecision(StartStep.START)),
        (NOW, 2, "start: HTTP 408", None, False, StartDecision(StartStep.START)),
        (NOW, 1, None, None, True, StartDecision(StartStep.RECONCILE)),
        # An unclear call is reconciled whatever the time: a livestream may exist.
        (s(3600), 1, None, None, True, StartDecision(StartStep.RECONCILE)),
        (s(3600), 0, None, None, False, StartDecision(StartStep.MISS, reason="start deadline passed")),
        (s(3600), 2, "start: HTTP 408", None, False, StartDecision(StartStep.FAIL, reason="start deadline passed; last error: start: HTTP 408")),
        # A paused token: wait with everyone else, no call, keeping its place in the queue
        # (its due instant, NOW here): nothing is claimed until the pause ends.
        (NOW, 0, None, PAUSED_UNTIL, False, StartDecision(StartStep.RETRY, retry_at=NOW, reason=f"waiting for the API rate limit until {PAUSED_UNTIL.isoformat()}")),
        (NOW, 1, None, PAUSED_UNTIL, True, StartDecision(StartStep.RETRY, retry_at=NOW, reason=f"waiting for the API rate limit until {PAUSED_UNTIL.isoformat()}")),
        (s(31), 0, None, PAUSED_UNTIL, False, StartDecision(StartStep.START)),  # the pause is over
    ],
)  # fmt: skip
def test_before_call(now, attempts, last_error, paused, unclear, expected) -> None:
    got = policy.before_call(
        now=now, due_at=NOW, deadline=DEADLINE, attempts=attempts, last_error=last_error,
        paused_until=paused, unclear=unclear,
    )  # fmt: skip
    assert got == expected


def test_before_call_waits_for_the_due_instant_by_the_database_clock() -> None:
    """A worker whose clock runs ahead gets its ETA early: it must not start before the instant."""
    due = NOW + timedelta(seconds=2)
    got = policy.before_call(
        now=NOW, due_at=due, deadline=DEADLINE, attempts=0, last_error=None,
        paused_until=PAUSED_UNTIL, unclear=True,
    )  # fmt: skip
    assert got == StartDecision(StartStep.WAIT, retry_at=due)


FIRST_UNCLEAR = NOW - timedelta(minutes=1)
OURS = Livestream(id="ls-ours", created_at=FIRST_UNCLEAR + timedelta(seconds=1))
SKEWED = Livestream(id="ls-skew", created_at=FIRST_UNCLEAR - timedelta(minutes=4))
UNDATED = Livestream(id="ls-undated")
OLDER = Livestream(id="ls-old", created_at=FIRST_UNCLEAR - timedelta(minutes=6))
NAMED = Livestream(id="ls-named", created_at=FIRST_UNCLEAR + timedelta(seconds=1), name="town-hall")
THEIRS = Livestream(id="ls-theirs", created_at=FIRST_UNCLEAR + timedelta(seconds=1), name="other")


@pytest.mark.parametrize(
    ("found", "now", "expected"),
    [
        (None, NOW, StartDecision(StartStep.START, AttemptOutcome.ABSENT)),
        (None, DEADLINE + timedelta(seconds=1), StartDecision(StartStep.FAIL, AttemptOutcome.ABSENT, reason="deadline passed; the earlier unclear call created no livestream")),
        (OURS, NOW, StartDecision(StartStep.STORE, AttemptOutcome.ADOPTED)),
        (OURS, DEADLINE + timedelta(hours=1), StartDecision(StartStep.STORE, AttemptOutcome.ADOPTED)),
        (SKEWED, NOW, StartDecision(StartStep.STORE, AttemptOutcome.ADOPTED)),  # within the clock skew
        (UNDATED, NOW, StartDecision(StartStep.STORE, AttemptOutcome.ADOPTED)),
        (OLDER, NOW, StartDecision(StartStep.FAIL, AttemptOutcome.FATAL, reason=f"meeting already has livestream ls-old, created {OLDER.created_at.isoformat()} before our first call; not adopting another caller's livestream")),
        (NAMED, NOW, StartDecision(StartStep.STORE, AttemptOutcome.ADOPTED)),  # our own name
        (THEIRS, NOW, StartDecision(StartStep.FAIL, AttemptOutcome.FATAL, reason="meeting already has livestream ls-theirs, named 'other', not 'town-hall' as our calls named it; not adopting another caller's livestream")),
    ],
)  # fmt: skip
def test_after_reconcile(found, now, expected) -> None:
    got = policy.after_reconcile(
        found, name="town-hall", first_unclear=FIRST_UNCLEAR, now=now, deadline=DEADLINE
    )
    assert got == expected


@pytest.mark.parametrize("found", [THEIRS, NAMED, OURS])
def test_after_reconcile_without_a_name_of_ours_goes_by_the_instant(found) -> None:
    """A booking without a name: how the API names an unnamed livestream is not documented,
    so a name found says nothing, and the instant decides as before."""
    got = policy.after_reconcile(
        found, name=None, first_unclear=FIRST_UNCLEAR, now=NOW, deadline=DEADLINE
    )
    assert got == StartDecision(StartStep.STORE, AttemptOutcome.ADOPTED)


def test_after_livestream_starts_only_with_a_stream_key() -> None:
    keyed = Livestream(id="ls-1", stream_key=Secret("sk-1"))
    assert policy.after_livestream(keyed) == StartDecision(
        StartStep.STORE, state=StreamState.STARTED
    )
    keyless = policy.after_livestream(Livestream(id="ls-2"))
    assert keyless.next is StartStep.FAIL and keyless.state is StreamState.FAILED
    assert keyless.reason.startswith("livestream ls-2 exists but the API returned no stream key")


def test_a_429_on_the_reconcile_pauses_the_token_too() -> None:
    """The limit is per token across the whole API: a GET that hits it must stop every start."""
    got = decide(RECONCILE, RATE_LIMITED, attempts=2)
    assert got == StartDecision(
        StartStep.RETRY, AttemptOutcome.RETRYABLE, s(30), "start: HTTP 429", s(30)
    )
    past_limit = DEADLINE + timedelta(seconds=WINDOW + 1)
    late = decide(RECONCILE, RATE_LIMITED, now=past_limit)
    assert late.next is StartStep.FAIL and late.pause_until == past_limit + timedelta(seconds=30)
