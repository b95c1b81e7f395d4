"""Pure rules of the start step: which claims travel together as one launch, and when each
request leaves.

A launch is one broker message for claims that share a claim token (they were claimed by one
statement) and fall in one instant window. The window bounds how long one launch keeps its
run busy before its last instant; the size bounds one message and one statement, and lets a
burst spread over several processes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from worker.lease.claims import Claim

LAUNCH_WINDOW = 1.0  # seconds of instants one launch covers
LAUNCH_SIZE = 100  # claims in one launch at most


@dataclass(frozen=True)
class Launch:
    """Claims handed out together: one message, ``livestreams.launch(token, stream_ids)``."""

    token: uuid.UUID
    claims: tuple[Claim, ...]

    @property
    def stream_ids(self) -> list[uuid.UUID]:
        return [c.row_id for c in self.claims]

    @property
    def first_due(self) -> datetime:
        return self.claims[0].due_at


def launches(
    claims: list[Claim], *, window: float = LAUNCH_WINDOW, size: int = LAUNCH_SIZE
) -> list[Launch]:
    """Group ``claims`` into launches: per token, per ``window`` of instants, at most ``size``
    each; ordered by their first instant, and each launch's claims by instant."""
    groups: dict[tuple[uuid.UUID, int], list[Claim]] = {}
    for claim in sorted(claims, key=lambda c: c.due_at):
        bucket = int(claim.due_at.timestamp() // window)
        groups.setdefault((claim.token, bucket), []).append(claim)
    found = [
        Launch(token, tuple(group[i : i + size]))
        for (token, _), group in groups.items()
        for i in range(0, len(group), size)
    ]
    return sorted(found, key=lambda launch: launch.first_due)


def seconds_until(instant: datetime, db_now: datetime, *, slack: float = 0.0) -> float:
    """How long to wait, from the moment ``db_now`` was read, before a request due at
    ``instant`` leaves (0: at once; a late one leaves at once, never waits)."""
    return max(0.0, (instant - db_now).total_seconds() - slack)


def resend_cap(taken_up: int, *, floor: int = 2 * LAUNCH_SIZE) -> int:
    """How many late start claims one tick may hand out again, when the start lane took
    ``taken_up`` claims up over the last pickup grace: never more than the lane has been
    finishing, so a slow lane is not fed faster than it drains (docs/DESIGN.md, "No feedback
    loops"); ``floor`` at least, since a lane that took nothing up may only have lost its
    messages (a broker restarted empty), and those must go out again at once."""
    return max(floor, taken_up)
