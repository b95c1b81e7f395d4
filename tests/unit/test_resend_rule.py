"""When a claim no run took up is sent again: the rule, as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.lease import rules


@pytest.mark.parametrize(
    ("due", "handed", "now", "again"),
    [
        (0, 0, 3, False),  # within the grace (3 s)
        (0, 0, 3.5, True),
        (0, -5, 3.5, True),  # handed out ahead, for its ETA: the grace runs from the instant
        (0, -5, 2, False),
        (0, 3.5, 6.5, False),  # sent again at 3.5 s: waits as long again (3.5 s), at least
        (0, 3.5, 7.1, True),
        (0, 7.1, 14, False),  # 7.1, 14.2, 26.2 ...: a slow queue gains few duplicates
        (0, 7.1, 14.3, True),
        (0, 14.2, 26.1, False),
        (0, 14.2, 26.3, True),  # at most four graces (12 s) between two sends
        (0, 100, 111, False),
        (0, 100, 112.5, True),
    ],
)
def test_a_late_claim_is_sent_again_less_and_less_often(due, handed, now, again) -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)

    def t(seconds: float) -> datetime:
        return at + timedelta(seconds=seconds)

    assert rules.send_again(t(due), t(handed), t(now), grace=3.0) is again
