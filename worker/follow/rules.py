"""Pure decisions for following a livestream after it started: check, stop, or end.

A track run (``worker.follow.flow``) first asks for the meeting's active livestream, then comes
here with what it knows. Nothing here does I/O or reads a clock; every decision is a table test
(tests/unit/test_follow.py). The rules (docs/DESIGN.md, Part 2):
- the stream is ours only while it is the meeting's active livestream; once another one (or
  none) is, ours has ended upstream, unless our own stop was sent and may have done it;
- a stop is due at ``ends_at`` or when ops asked, and is sent only after the check found ours
  active (the stop endpoint works per meeting: never stop someone else's stream);
- status checks back off from ``first_check`` up to ``check_cap`` until LIVE is seen, then run
  every ``live_check`` (rarely, ``live_check_with_webhooks``, while provider webhooks flow);
- a stream not LIVE by ``started_at + live_deadline`` is flagged ``not_live``.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from models import EndReason, Problem, StreamState
from worker.errors import FinalError, RetryableError, UpstreamError
from worker.settings import Backoff, Cadence
from worker.upstream.backoff import next_due
from worker.upstream.responses import Livestream

LIVE = "LIVE"
# A stop that keeps failing without a final answer is flagged after this many tries; the row
# is still checked (and ends if the stream ends upstream), but no longer stopped blindly.
MAX_STOP_TRIES = 8
# Far enough for "no next check" arithmetic, near enough for any database's timestamp type.
_NEVER = timedelta(days=3650)


@dataclass(frozen=True)
class Facts:
    """What a track run read of its row when it took the claim."""

    state: str
    livestream_id: str
    started_at: datetime
    live_at: datetime | None
    ends_at: datetime | None
    stop_requested_at: datetime | None
    problem: str | None


class FollowStep(enum.StrEnum):
    CONTINUE = "continue"  # still ours and running: check again at due_at
    STOP = "stop"  # ours and its stop is due: send the stop now
    END = "end"  # no longer ours upstream: the row is ended


@dataclass(frozen=True)
class FollowDecision:
    next: FollowStep
    due_at: datetime | None = None  # CONTINUE: the next tracking action
    end_reason: EndReason | None = None  # STOP / END
    problem: Problem | None = None  # a flag to set (None: leave it as it is)
    reason: str | None = None  # for last_error, when something went wrong
    pause_until: datetime | None = None  # a 429: every call of the token waits until then


def stop_due(facts: Facts, now: datetime) -> EndReason | None:
    """Why the stream should be stopped now, if it should."""
    if facts.problem == Problem.STOP_FAILED.value:
        return None  # flagged for ops; not sent again until they ask anew
    if facts.stop_requested_at is not None:
        return EndReason.OPS_STOP
    if facts.ends_at is not None and facts.ends_at <= now:
        return EndReason.SCHEDULED_STOP
    return None


def next_check(
    facts: Facts, now: datetime, cadence: Cadence, *, live: bool, webhooks_flowing: bool
) -> datetime:
    """The next tracking action: the next status check, or the stop at ``ends_at``."""
    if live:
        every = cadence.live_check_with_webhooks if webhooks_flowing else cadence.live_check
        due = now + timedelta(seconds=every)
    else:
        deadline = facts.started_at + timedelta(seconds=cadence.live_deadline)
        age = max(0.0, (now - facts.started_at).total_seconds())
        step = min(max(age / 2, cadence.first_check), cadence.check_cap)
        due = now + timedelta(seconds=step)
        if now < deadline:
            due = min(due, deadline)  # be there to flag it at its deadline
        else:
            due = now + timedelta(seconds=max(cadence.live_check, cadence.check_cap))
    if facts.ends_at is not None and facts.problem != Problem.STOP_FAILED.value:
        due = min(due, max(facts.ends_at, now))
    return due


def after_check(
    facts: Facts,
    found: Livestream | None,
    now: datetime,
    cadence: Cadence,
    *,
    webhooks_flowing: bool,
    stop_sent: bool,
) -> FollowDecision:
    """What to do once the meeting's active livestream is known (``found``; None: none).

    ``stop_sent``: a stop call of ours was sent for this row before (its effect unclear).
    """
    stop = stop_due(facts, now)
    if found is None or found.id != facts.livestream_id:
        reason = stop if stop is not None and stop_sent else EndReason.ENDED_UPSTREAM
        return FollowDecision(FollowStep.END, end_reason=reason)
    if stop is not None:
        return FollowDecision(FollowStep.STOP, end_reason=stop)
    live = facts.state == StreamState.LIVE.value or found.status == LIVE
    problem = None
    deadline = facts.started_at + timedelta(seconds=cadence.live_deadline)
    if not live and now >= deadline and facts.problem is None:
        problem = Problem.NOT_LIVE
    due = next_check(facts, now, cadence, live=live, webhooks_flowing=webhooks_flowing)
    return FollowDecision(FollowStep.CONTINUE, due_at=due, problem=problem)


def after_error(
    facts: Facts,
    error: UpstreamError,
    now: datetime,
    cadence: Cadence,
    *,
    stopping: EndReason | None,
    stop_failures: int,
    rand: random.Random,
) -> FollowDecision:
    """A status check (``stopping`` None) or a stop call raised ``error``.

    Any check is simply tried again: it is a read. A stop that may have worked is checked
    again before anything else is sent, never repeated blindly; a stop refused for good, or
    failing ``MAX_STOP_TRIES`` times, flags the row ``stop_failed``.
    """
    retry_after = error.retry_after if isinstance(error, RetryableError) else None
    pause = None
    if isinstance(error, RetryableError) and error.pauses_token:
        pause = now + timedelta(seconds=retry_after or cadence.check_cap)
    backoff = Backoff(cadence.first_check, cadence.check_cap, cadence.first_check)
    tries = stop_failures + 1 if stopping is not None else 1
    due = next_due(backoff, tries, now, now + _NEVER, retry_after=retry_after, rand=rand)
    assert due is not None  # the deadline is years away
    if stopping is not None:
        gave_up = tries >= MAX_STOP_TRIES
        if (isinstance(error, FinalError) and error.status != 404) or gave_up:
            why = "refused" if not gave_up else f"failed {tries} times"
            reason = f"stop {why}: {str(error)[:400]}"
            flagged = replace(facts, problem=Problem.STOP_FAILED.value)
            later = next_check(flagged, now, cadence, live=True, webhooks_flowing=False)
            return FollowDecision(
                FollowStep.CONTINUE, due_at=max(due, later), problem=Problem.STOP_FAILED,
                reason=reason, pause_until=pause,
            )  # fmt: skip
        # A 404 (none active), a timeout or a 5xx: the next run checks whose stream is active.
    elif facts.ends_at is not None and stop_due(facts, now) is None:
        due = min(due, max(facts.ends_at, now))
    # The attempt row keeps the error; the row's last_error is for what ops must act on.
    return FollowDecision(FollowStep.CONTINUE, due_at=due, pause_until=pause)
