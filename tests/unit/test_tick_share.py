"""What the budget and the broker's cap leave for each kind of claim in one tick
(worker.dispatch.share): starts first, then stops, then checks; deliveries on their own."""

from __future__ import annotations

import pytest

from worker.dispatch import Queue, Share, share

CAP = 100

# budget, queued starts, queued follow-ups, held deliveries; starts and stops claimed so far,
# starts due within a window -> starts, stops, checks, deliveries
CASES = [
    # An idle tick: the cap bounds each kind; checks and stops take half the queue.
    ((1000, 0, 0, 0), (0, 0, 0), Share(100, 50, 50, 100)),
    # The budget is the tighter bound.
    ((30, 0, 0, 0), (0, 0, 0), Share(30, 30, 30, 100)),
    # Starts claimed come out of the budget before stops and checks.
    ((30, 0, 0, 0), (20, 0, 0), Share(30, 10, 10, 100)),
    # Stops claimed come out before checks.
    ((30, 0, 0, 0), (20, 6, 0), Share(30, 10, 4, 100)),
    # Checks leave room for every start due within a window.
    ((30, 0, 0, 0), (20, 6, 3), Share(30, 10, 1, 100)),
    ((30, 0, 0, 0), (20, 6, 50), Share(30, 10, 0, 100)),
    # A spent or paused budget: nothing that calls the API; deliveries still go.
    ((0, 0, 0, 0), (0, 0, 0), Share(0, 0, 0, 100)),
    ((-5, 0, 0, 0), (0, 0, 0), Share(0, 0, 0, 100)),
    # The broker's backlog counts starts and follow-ups together against the cap.
    ((1000, 70, 20, 0), (0, 0, 0), Share(10, 10, 10, 100)),
    ((1000, 70, 20, 0), (10, 0, 0), Share(10, 0, 0, 100)),
    # Follow-ups never hold more than half the queue, whatever the budget.
    ((1000, 0, 50, 0), (0, 0, 0), Share(50, 0, 0, 100)),
    ((1000, 0, 45, 0), (0, 0, 0), Share(55, 5, 5, 100)),
    # A full broker: nothing more is handed out, and deliveries held count on their own.
    ((1000, 100, 0, 100), (0, 0, 0), Share(0, 0, 0, 0)),
    ((1000, 0, 0, 60), (0, 0, 0), Share(100, 50, 50, 40)),
    ((1000, 0, 0, 250), (0, 0, 0), Share(100, 50, 50, 0)),
]


@pytest.mark.parametrize(("queue", "taken", "expected"), CASES)
def test_share(
    queue: tuple[int, int, int, int], taken: tuple[int, int, int], expected: Share
) -> None:
    budget, starts, follow_ups, deliveries = queue
    got = share(
        Queue(budget, CAP, starts, follow_ups, deliveries),
        starts=taken[0],
        stops=taken[1],
        starts_soon=taken[2],
    )
    assert got == expected
