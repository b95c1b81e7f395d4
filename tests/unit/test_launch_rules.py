"""How claims travel as launches (worker.start.rules): a table of claims and the groups."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from worker.lease.claims import Claim, ClaimKind
from worker.start.rules import launches, resend_cap, seconds_until

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
A, B = uuid.UUID(int=1), uuid.UUID(int=2)


def claim(n: int, token: uuid.UUID, at: float) -> Claim:
    return Claim(uuid.UUID(int=100 + n), token, T0 + timedelta(seconds=at), ClaimKind.START)


@pytest.mark.parametrize(
    ("claims", "size", "expected"),
    [
        pytest.param([], 100, [], id="nothing-claimed"),
        pytest.param(
            [claim(1, A, 0.1), claim(2, A, 0.5), claim(3, A, 0.9)], 100, [[1, 2, 3]],
            id="one-token-one-window",
        ),
        pytest.param(
            [claim(2, A, 1.2), claim(1, A, 0.2)], 100, [[1], [2]], id="windows-split-in-order",
        ),
        pytest.param(
            [claim(1, A, 0.1), claim(2, B, 0.2), claim(3, A, 0.3)], 100, [[1, 3], [2]],
            id="tokens-never-mix",
        ),
        pytest.param(
            [claim(n, A, n / 10) for n in range(5)], 2, [[0, 1], [2, 3], [4]],
            id="size-bounds-a-launch",
        ),
        pytest.param(
            [claim(1, B, 3.0), claim(2, A, -4.0)], 100, [[2], [1]],
            id="an-overdue-claim-goes-first",
        ),
    ],
)  # fmt: skip
def test_claims_are_grouped_into_launches(claims, size, expected) -> None:
    got = launches(claims, size=size)
    assert [[c.row_id.int - 100 for c in launch.claims] for launch in got] == expected
    for launch in got:
        assert {c.token for c in launch.claims} == {launch.token}
        assert launch.stream_ids == [c.row_id for c in launch.claims]
        assert launch.first_due == min(c.due_at for c in launch.claims)


@pytest.mark.parametrize(
    ("instant", "slack", "expected"),
    [(2.5, 0.0, 2.5), (0.0, 0.0, 0.0), (-3.0, 0.0, 0.0), (2.5, 0.5, 2.0), (0.2, 0.5, 0.0)],
)
def test_seconds_until_the_instant_never_negative(instant, slack, expected) -> None:
    assert seconds_until(T0 + timedelta(seconds=instant), T0, slack=slack) == expected


@pytest.mark.parametrize(
    ("taken_up", "floor", "expected"),
    [
        pytest.param(0, 200, 200, id="an-idle-lane-may-only-have-lost-its-messages"),
        pytest.param(150, 200, 200, id="a-slow-lane-gets-the-floor"),
        pytest.param(900, 200, 900, id="a-busy-lane-as-fast-as-it-drains"),
    ],
)
def test_late_claims_are_sent_again_no_faster_than_the_lane_drains(taken_up, floor, expected):
    assert resend_cap(taken_up, floor=floor) == expected
