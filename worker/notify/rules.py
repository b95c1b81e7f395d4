"""Pure decisions of outbound webhook delivery: what an answer means, and when to try again.

    2xx                         delivered
    410 Gone                    the endpoint is disabled; the delivery fails
    refused by the SSRF guard   failed at once: the address will not become public by waiting
    any other status, or none   retried on SCHEDULE (with jitter), then failed
    (a network error, a timeout)

Redirects are not followed (a 3xx is retried like any other failure): following one would
send the signed body to an address nobody registered, and past the SSRF guard.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

# Seconds after each failed attempt until the next, per docs/DESIGN.md ("Telling the platform"):
# about three days in all. After the last, the delivery fails (ops can replay it).
SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)
JITTER = 0.1  # each delay is moved by up to this fraction either way
FLOOR = 1.0  # never due again at once
TIMEOUT = 15.0  # the whole POST, connect to last byte
EXCERPT = 500  # characters of a response body kept with its attempt


class DeliveryStep(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    GIVE_UP = "give_up"  # the schedule ran out
    DISABLE = "disable"  # 410: the receiver asks us to stop for good


@dataclass(frozen=True)
class DeliveryDecision:
    next: DeliveryStep
    delay: float | None = None  # seconds until the next attempt (RETRY only)
    reason: str | None = None


def delay_after(attempts: int, rand: Callable[[], float]) -> float | None:
    """Seconds from the ``attempts``-th failed attempt to the next; None once it is over.

    ``rand`` returns a float in [0, 1): the jitter spreads a receiver's outage recovery.
    """
    if attempts < 1 or attempts > len(SCHEDULE):
        return None
    base = SCHEDULE[attempts - 1]
    return max(FLOOR, base * (1 + JITTER * (2 * rand() - 1)))


def decide(
    status: int | None,
    error: str | None,
    attempts: int,
    rand: Callable[[], float],
    *,
    refused: bool = False,
) -> DeliveryDecision:
    """What an attempt's answer (``status``; None with ``error`` when none came) means,
    after ``attempts`` attempts of this delivery; ``refused``: the SSRF guard refused the
    address, which three days of retries would only hammer."""
    if refused:
        return DeliveryDecision(
            DeliveryStep.GIVE_UP, reason=f"{error or 'refused by the SSRF guard'}; not retried"
        )
    if status is not None and 200 <= status < 300:
        return DeliveryDecision(DeliveryStep.DELIVERED)
    if status == 410:
        return DeliveryDecision(DeliveryStep.DISABLE, reason="the endpoint answered 410 Gone")
    reason = f"HTTP {status}" if status is not None else (error or "no answer")
    delay = delay_after(attempts, rand)
    if delay is None:
        return DeliveryDecision(
            DeliveryStep.GIVE_UP, reason=f"{reason}; gave up after {attempts} attempts"
        )
    return DeliveryDecision(DeliveryStep.RETRY, delay=delay, reason=reason)
