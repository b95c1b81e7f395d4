"""worker.follow.rules: what a track run does with what it saw, as tables."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from models import EndReason, Problem
from worker.errors import AmbiguousError, FinalError, RetryableError
from worker.follow.rules import (
    MAX_STOP_TRIES,
    Facts,
    after_check,
    after_error,
    next_check,
    stop_due,
)
from worker.follow.rules import (
    FollowStep as Step,
)
from worker.settings import Cadence
from worker.upstream.responses import Livestream

T0 = datetime(2031, 5, 1, 18, 0, tzinfo=UTC)
CADENCE = Cadence(
    first_check=2, check_cap=30, live_check=300, live_check_with_webhooks=1800, live_deadline=300
)
OURS = "ls-ours"


def facts(**changes) -> Facts:
    base = {
        "state": "started", "livestream_id": OURS, "started_at": T0, "live_at": None,
        "ends_at": None, "stop_requested_at": None, "problem": None,
    }  # fmt: skip
    return Facts(**{**base, **changes})


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("changes", "now", "expected"),
    [
        ({}, 10, None),
        ({"ends_at": s(60)}, 59, None),
        ({"ends_at": s(60)}, 60, EndReason.SCHEDULED_STOP),
        ({"stop_requested_at": s(5)}, 10, EndReason.OPS_STOP),
        ({"stop_requested_at": s(5), "ends_at": s(1)}, 10, EndReason.OPS_STOP),
        ({"ends_at": s(1), "problem": "stop_failed"}, 10, None),  # flagged: left to ops
        ({"ends_at": s(1), "problem": "not_live"}, 10, EndReason.SCHEDULED_STOP),
    ],
)
def test_stop_due(changes, now, expected) -> None:
    assert stop_due(facts(**changes), s(now)) == expected


@pytest.mark.parametrize(
    ("changes", "now", "live", "flowing", "due"),
    [
        ({}, 0, False, False, 2),  # the first check: within seconds of the start
        ({}, 2, False, False, 4),  # backs off: half the age, at least first_check ...
        ({}, 20, False, False, 30),
        ({}, 100, False, False, 130),  # ... at most check_cap
        ({}, 290, False, False, 300),  # never past the live deadline, to flag it there
        ({}, 300, False, False, 600),  # not live after its deadline: slowly, as if live
        ({}, 100, True, False, 400),  # live: every live_check
        ({}, 100, True, True, 1900),  # live, provider webhooks flowing: rarely
        ({"ends_at": s(150)}, 100, True, False, 150),  # the stop comes first
        ({"ends_at": s(50)}, 100, True, False, 100),  # a stop overdue is due now
        ({"ends_at": s(150), "problem": "stop_failed"}, 100, True, False, 400),
    ],
)
def test_next_check(changes, now, live, flowing, due) -> None:
    got = next_check(facts(**changes), s(now), CADENCE, live=live, webhooks_flowing=flowing)
    assert got == s(due)


def ls(ident: str = OURS, status: str = "INVOKED") -> Livestream:
    return Livestream(id=ident, status=status)


@pytest.mark.parametrize(
    ("changes", "found", "stop_sent", "now", "next_", "reason", "problem"),
    [
        ({}, ls(), False, 10, Step.CONTINUE, None, None),
        ({}, ls(status="LIVE"), False, 400, Step.CONTINUE, None, None),
        ({}, ls(), False, 299, Step.CONTINUE, None, None),
        ({}, ls(), False, 300, Step.CONTINUE, None, Problem.NOT_LIVE),
        ({"problem": "not_live"}, ls(), False, 400, Step.CONTINUE, None, None),  # flagged once
        ({"state": "live"}, ls(status="IDLE"), False, 400, Step.CONTINUE, None, None),
        ({}, None, False, 10, Step.END, EndReason.ENDED_UPSTREAM, None),
        ({}, ls("someone-else"), False, 10, Step.END, EndReason.ENDED_UPSTREAM, None),
        ({"ends_at": s(5)}, ls(), False, 10, Step.STOP, EndReason.SCHEDULED_STOP, None),
        (
            {"ends_at": s(5)},
            ls("someone-else"),
            False,
            10,
            Step.END,
            EndReason.ENDED_UPSTREAM,
            None,
        ),
        # Our unclear stop, then nothing of ours active: our stop most likely did it.
        ({"ends_at": s(5)}, None, True, 10, Step.END, EndReason.SCHEDULED_STOP, None),
        ({"stop_requested_at": s(5)}, None, True, 10, Step.END, EndReason.OPS_STOP, None),
        ({"stop_requested_at": s(5)}, ls(), True, 10, Step.STOP, EndReason.OPS_STOP, None),
    ],
)
def test_after_check(changes, found, stop_sent, now, next_, reason, problem) -> None:
    decision = after_check(
        facts(**changes), found, s(now), CADENCE, webhooks_flowing=False, stop_sent=stop_sent
    )
    assert (decision.next, decision.end_reason, decision.problem) == (next_, reason, problem)
    if next_ is Step.CONTINUE:
        assert decision.due_at is not None and decision.due_at > s(now)


def test_a_live_row_is_checked_at_the_live_cadence_even_if_it_dropped_to_idle() -> None:
    decision = after_check(
        facts(state="live"), ls(status="IDLE"), s(400), CADENCE,
        webhooks_flowing=False, stop_sent=False,
    )  # fmt: skip
    assert decision.due_at == s(700)


RAND = random.Random(0)


@pytest.mark.parametrize(
    ("error", "stopping", "failures", "problem"),
    [
        (RetryableError("connect"), None, 0, None),
        (AmbiguousError("timeout"), None, 0, None),
        (FinalError("401", status=401), None, 0, None),  # a check is a read: tried again
        (RetryableError("503", status=503), EndReason.SCHEDULED_STOP, 0, None),
        (FinalError("404", status=404), EndReason.SCHEDULED_STOP, 0, None),  # gone: re-check
        (FinalError("403", status=403), EndReason.SCHEDULED_STOP, 0, Problem.STOP_FAILED),
        (AmbiguousError("t"), EndReason.OPS_STOP, MAX_STOP_TRIES - 1, Problem.STOP_FAILED),
    ],
)
def test_after_error(error, stopping, failures, problem) -> None:
    decision = after_error(
        facts(ends_at=s(5)), error, s(10), CADENCE, stopping=stopping,
        stop_failures=failures, rand=RAND,
    )  # fmt: skip
    assert decision.next is Step.CONTINUE and decision.problem == problem
    assert decision.due_at is not None and decision.due_at >= s(10 + CADENCE.first_check)
    if problem is Problem.STOP_FAILED:
        assert decision.reason and decision.reason.startswith("stop ")
    else:
        assert decision.reason is None


def test_a_429_pauses_the_token_until_retry_after() -> None:
    error = RetryableError("429", status=429, retry_after=40, pauses_token=True)
    decision = after_error(
        facts(), error, s(10), CADENCE, stopping=None, stop_failures=0, rand=RAND
    )
    assert decision.pause_until == s(50) and decision.due_at is not None
    assert decision.due_at >= s(50)
