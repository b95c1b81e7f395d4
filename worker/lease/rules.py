"""Claims that no run took up in time are handed out again, under the same token, less and
less often.

A claim handed to the broker is *taken up* when a run confirms it (claim_owner is set). One
that is not taken up by the pickup grace after its instant has either lost its message (a
flushed broker, a killed worker's prefetch or ETA buffer) or is still queued behind a slow
pool. The two look alike from the database, so the tick sends the claim again without taking
it back: the same token, so whichever message comes first starts it and the other finds the
token renewed and does nothing. A lost message is replaced within the grace; a merely late
one keeps its place in the queue and is not wasted.

Each further send waits at least as long as the claim had already waited when it was last
sent, up to four pickup graces (3 s, 6 s, 12 s, then every 12 s after its instant), so a
backlog behind a slow pool gains a duplicate now and then, not one per tick for every claim
in it, while a message lost again and again (workers killed one after another) is still
replaced within seconds. (Taking such claims back
under a new token, as before, made every late message worthless and queued its booking again
at the back, behind the same backlog: on an overloaded machine that fed on itself.)
"""

from __future__ import annotations

from datetime import datetime

LONGEST_WAIT = 4  # pickup graces: the longest wait between two sends of one claim


def send_again(due_at: datetime, handed_at: datetime, now: datetime, grace: float) -> bool:
    """Should a claim due at ``due_at``, last handed out at ``handed_at`` and not taken up by
    ``now``, be handed out again? Pure."""
    waited_then = max(0.0, (handed_at - due_at).total_seconds())
    waiting = (now - max(due_at, handed_at)).total_seconds()
    return waiting > min(max(grace, waited_then), LONGEST_WAIT * grace)
