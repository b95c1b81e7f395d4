"""The launch thread (worker.start.timer): each start at its instant, in order of instants."""

from __future__ import annotations

import threading
import time

from worker.start.timer import LaunchTimer


def test_starts_run_in_the_order_of_their_instants_not_of_arrival() -> None:
    timer = LaunchTimer(senders=1)
    ran: list[str] = []
    now = time.monotonic()
    timer.at(now + 0.30, lambda: ran.append("third"))
    timer.at(now + 0.10, lambda: ran.append("first"))
    timer.at(now + 0.20, lambda: ran.append("second"))
    assert timer.waiting == 3
    assert timer.close(5.0)
    assert ran == ["first", "second", "third"]


def test_no_start_runs_before_its_instant() -> None:
    timer = LaunchTimer()
    ran_at: list[float] = []
    when = time.monotonic() + 0.2
    timer.at(when, lambda: ran_at.append(time.monotonic()))
    assert timer.drain(5.0)
    assert ran_at and ran_at[0] >= when
    timer.close(1.0)


def test_an_instant_already_past_runs_at_once_before_later_ones() -> None:
    timer = LaunchTimer(senders=1)
    ran: list[str] = []
    timer.at(time.monotonic() + 0.2, lambda: ran.append("later"))
    timer.at(time.monotonic() - 5.0, lambda: ran.append("overdue"))
    assert timer.close(5.0)
    assert ran == ["overdue", "later"]


def test_a_failing_start_does_not_stop_the_others() -> None:
    timer = LaunchTimer(senders=1)
    ran: list[int] = []

    def boom() -> None:
        raise ValueError("one start failed")

    now = time.monotonic()
    timer.at(now, boom)
    timer.at(now + 0.05, lambda: ran.append(2))
    assert timer.close(5.0)
    assert ran == [2]


def test_a_slow_start_does_not_hold_back_the_next_instant() -> None:
    timer = LaunchTimer(senders=4)
    release = threading.Event()
    ran: list[str] = []
    now = time.monotonic()
    timer.at(now, release.wait)  # a request that does not answer until released
    timer.at(now + 0.05, lambda: ran.append("next"))
    deadline = time.monotonic() + 5
    while not ran and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ran == ["next"]
    release.set()
    assert timer.close(5.0)


def test_drain_reports_what_is_still_waiting() -> None:
    timer = LaunchTimer()
    timer.at(time.monotonic() + 30, lambda: None)
    assert not timer.drain(0.05)
    assert timer.waiting == 1
    assert not timer.close(0.05)
