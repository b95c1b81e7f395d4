"""The capacity forecast as a table: budgets, start windows, retries, checks, calls spent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.capacity import rules
from worker.capacity.rules import Budget, Due, Spend

T = datetime(2027, 5, 1, 17, 0, tzinfo=UTC)
CF = Budget(1080, 300.0)  # 1,200 / 5 min at the dispatcher's 90 %


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def outcome(instants):
    return [(i.due, i.on_time, i.late, i.missed, i.latest) for i in instants]


@pytest.mark.parametrize(
    ("due", "budget", "spend", "spent", "expected"),
    [
        # Within the budget: every start at its instant.
        ([Due(T, 1080, 900)], CF, Spend(), [], [(1080, 1080, 0, 0, 0.0)]),
        # 1,500 at one instant: 1,080 at once, 420 once the first calls leave the window.
        ([Due(T, 1500, 900)], CF, Spend(), [], [(1500, 1080, 420, 0, 300.0)]),
        # ... and with a start window shorter than the rate window, those 420 are missed.
        ([Due(T, 1500, 120)], CF, Spend(), [], [(1500, 1080, 0, 420, 0.0)]),
        # A start window that ends exactly when room comes back still starts them.
        ([Due(T, 1500, 300)], CF, Spend(), [], [(1500, 1080, 420, 0, 300.0)]),
        # Beyond three windows' worth of room even a 15-minute window misses some.
        ([Due(T, 4500, 900)], CF, Spend(), [], [(4500, 1080, 3240, 180, 900.0)]),
        # Retries: at 1.5 calls per start (retries, reconciles), 720 fit at once.
        ([Due(T, 1000, 900)], CF, Spend(per_start=1.5), [], [(1000, 720, 280, 0, 300.0)]),
        # A smaller token.
        ([Due(T, 100, 60)], Budget(90, 300.0), Spend(), [], [(100, 90, 0, 10, 0.0)]),
        # Calls already made in the window count until they leave it.
        ([Due(T, 1080, 900)], CF, Spend(), [(at(-100), 80)], [(1080, 1000, 80, 0, 200.0)]),
        ([Due(T, 1080, 900)], CF, Spend(), [(at(-300), 80)], [(1080, 1080, 0, 0, 0.0)]),
        # Two instants a minute apart share one window: the second waits for the first.
        ([Due(T, 800, 900), Due(at(60), 400, 900)], CF, Spend(), [],
         [(800, 800, 0, 0, 0.0), (400, 280, 120, 0, 240.0)]),
        # Five minutes apart they do not.
        ([Due(T, 1000, 900), Due(at(300), 1000, 900)], CF, Spend(), [],
         [(1000, 1000, 0, 0, 0.0), (1000, 1000, 0, 0, 0.0)]),
        # An earlier instant's waiting starts go first (oldest first, as the claim does).
        ([Due(T, 1500, 900), Due(at(300), 700, 900)], CF, Spend(), [],
         [(1500, 1080, 420, 0, 300.0), (700, 660, 40, 0, 300.0)]),
    ],
)  # fmt: skip
def test_the_forecast(due, budget, spend, spent, expected) -> None:
    assert outcome(rules.forecast(due, budget, spend, spent=spent)) == expected


@pytest.mark.parametrize(
    ("reach", "second"),
    [
        # The product's reach (the rate window + lookahead + pickup grace, worker.dispatch):
        # checks made before a start comes within it have left the window by its instant.
        (308.0, (500, 500, 0, 0, 0.0)),
        # A reach shorter than the window would let checks hold room a start then needs.
        (200.0, (500, 0, 500, 0, 50.0)),
    ],
)
def test_status_checks_take_only_room_no_start_within_reach_needs(reach, second) -> None:
    spend = Spend(per_start=1.0, checks=2.0, check_after=2.0, reach=reach)
    due = [Due(T, 500, 900), Due(at(250), 500, 900)]
    first, later = outcome(rules.forecast(due, CF, spend))
    assert first == (500, 500, 0, 0, 0.0)
    assert later == second


def test_the_checks_of_a_burst_wait_for_the_burst() -> None:
    spend = Spend(per_start=1.0, checks=5.0, check_after=2.0, reach=308.0)
    assert outcome(rules.forecast([Due(T, 1500, 900)], CF, spend)) == [(1500, 1080, 420, 0, 300.0)]


def test_a_booking_that_crosses_the_line_is_named_by_what_it_worsened() -> None:
    before = rules.forecast([Due(T, 1080, 120)], CF, Spend())
    after = rules.forecast([Due(T, 1081, 120)], CF, Spend())
    (crossed,) = rules.worsened(before, after)
    assert (crossed.at, crossed.missed) == (T, 1)
    assert rules.worsened(after, after) == []
    line = rules.describe(crossed, CF, "2027-05-01T17:00:00.000Z")
    assert line == (
        "2027-05-01T17:00:00.000Z: 1,081 starts due, 1,080 fit the token's budget "
        "(1,080 calls / 300 s) at the instant; 1 would be missed (not started within the "
        "120 s start window)"
    )


def test_at_risk_puts_the_most_missed_first() -> None:
    instants = rules.forecast(
        [Due(T, 1500, 900), Due(at(3600), 1500, 60), Due(at(7200), 10, 900)], CF, Spend()
    )
    assert [(i.at, i.missed, i.late) for i in rules.at_risk(instants)] == [
        (at(3600), 420, 0), (T, 0, 420)
    ]  # fmt: skip


def test_nothing_due_is_nothing_at_risk() -> None:
    assert rules.forecast([], CF, Spend()) == []
    assert rules.forecast([Due(T, 0, 900)], CF, Spend()) == []
