"""When to try again: a pure decision, tested with a table of inputs."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from worker.settings import Backoff

# 2.0 ** 1024 no longer fits a float (OverflowError); every base reaches any cap long before.
MAX_DOUBLINGS = 1023


def next_due(
    policy: Backoff,
    failures: int,
    now: datetime,
    deadline: datetime,
    *,
    retry_after: float | None = None,
    rand: random.Random | None = None,
) -> datetime | None:
    """The instant of the next attempt after ``failures`` failed ones, or None if past deadline.

    Exponential with "equal jitter" (half fixed, half random), so a burst of failures does not
    come back as a burst, yet no retry is ever due at once. ``retry_after`` from the API is a
    minimum. None means the next attempt could not begin before ``deadline``. Never raises,
    whatever the failure count or the (finite) ``retry_after``.
    """
    draw = (rand or random).random()
    doublings = min(max(failures - 1, 0), MAX_DOUBLINGS)
    exp = min(policy.cap, policy.base * 2.0**doublings)
    delay = max(policy.floor, exp / 2 + draw * exp / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    # Compared in seconds first: a huge retry_after would overflow timedelta or datetime.
    if delay > (deadline - now).total_seconds():
        return None
    return now + timedelta(seconds=delay)
