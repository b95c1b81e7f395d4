from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta

import pytest

from tests.fixed_random import Fixed
from worker.settings import Backoff
from worker.upstream.backoff import next_due

NOW = datetime(2030, 1, 1, tzinfo=UTC)
FAR = NOW + timedelta(hours=1)
POLICY = Backoff(base=1.0, cap=60.0, floor=0.5)


@pytest.mark.parametrize(
    ("failures", "draw", "seconds"),
    [
        (1, 0.0, 0.5),  # half of base 1 s
        (1, 1.0, 1.0),
        (2, 0.0, 1.0),
        (3, 1.0, 4.0),
        (4, 0.5, 6.0),
        (10, 1.0, 60.0),  # capped
        (30, 0.0, 30.0),  # capped, then halved by the fixed part
        (1025, 1.0, 60.0),  # 2 ** 1024 does not fit a float: capped, not OverflowError
        (10**6, 0.0, 30.0),
        (2**63, 1.0, 60.0),
    ],
)
def test_exponential_with_equal_jitter(failures: int, draw: float, seconds: float) -> None:
    due = next_due(POLICY, failures, NOW, FAR, rand=Fixed(draw))
    assert due == NOW + timedelta(seconds=seconds)


def test_floor_is_never_undercut() -> None:
    tiny = Backoff(base=0.01, cap=60.0, floor=0.5)
    assert next_due(tiny, 1, NOW, FAR, rand=Fixed(0.0)) == NOW + timedelta(seconds=0.5)


def test_retry_after_is_a_minimum() -> None:
    assert next_due(POLICY, 1, NOW, FAR, retry_after=7, rand=Fixed(1.0)) == NOW + timedelta(
        seconds=7
    )
    # A longer own backoff wins over a short retry-after.
    assert next_due(POLICY, 8, NOW, FAR, retry_after=1, rand=Fixed(1.0)) == NOW + timedelta(
        seconds=60
    )


def test_never_past_the_deadline() -> None:
    deadline = NOW + timedelta(seconds=5)
    assert next_due(POLICY, 1, NOW, deadline, retry_after=6) is None
    assert next_due(POLICY, 1, NOW, deadline, retry_after=5) == deadline


@pytest.mark.parametrize("failures", [0, 1, 1024, 1025, 10**6, 2**63, 10**400])
@pytest.mark.parametrize("retry_after", [None, -5.0, 0.0, 1e9, 1e300, sys.float_info.max])
def test_never_raises(failures: int, retry_after: float | None) -> None:
    due = next_due(POLICY, failures, NOW, FAR, retry_after=retry_after, rand=Fixed(1.0))
    if retry_after is not None and retry_after > 3600:
        assert due is None  # past the deadline, however far: no overflow on the way
    else:
        assert due is not None and NOW < due <= NOW + timedelta(seconds=60)


def test_jitter_spreads_a_burst() -> None:
    rand = random.Random(1)
    dues = {next_due(POLICY, 3, NOW, FAR, rand=rand) for _ in range(50)}
    assert len(dues) > 40
    assert all(NOW + timedelta(seconds=2) <= d <= NOW + timedelta(seconds=4) for d in dues)
