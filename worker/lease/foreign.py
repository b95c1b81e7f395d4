"""Claims this database does not have: another deployment shares the broker database.

Two deployments on one broker database take each other's messages. Each run then finds no
claim of its token and does nothing ("stale"), the owning deployment sends the claim again
after the pickup grace, and its starts come seconds late. The product cannot repair that
misconfiguration; it names it: a run whose claim names no row this database has says so in
the log, at most once a minute per process.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import ScheduledStream, WebhookDelivery
from worker.lease.claims import ClaimKind, Leased

log = logging.getLogger(__name__)

EVERY = 60.0  # seconds between two lines

_TABLES: dict[ClaimKind, Leased] = {
    ClaimKind.START: ScheduledStream,
    ClaimKind.TRACK: ScheduledStream,
    ClaimKind.WEBHOOK: WebhookDelivery,
}
_WHAT = {ClaimKind.START: "booking", ClaimKind.TRACK: "booking", ClaimKind.WEBHOOK: "delivery"}


def known(session: Session, kind: ClaimKind, ids: Sequence[uuid.UUID]) -> int:
    """How many of ``ids`` this database has at all (bookings, or webhook deliveries)."""
    table = _TABLES[kind]
    return session.scalar(select(func.count()).where(table.id.in_(list(ids)))) or 0


class Foreign:
    """One per process: says, at most every ``every`` seconds, that claims came from
    another deployment."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        every: float = EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.factory = factory
        self.every = every
        self.clock = clock
        self._said = -every
        self._lock = threading.Lock()

    def _due(self) -> bool:
        with self._lock:
            return self.clock() - self._said >= self.every

    def check(self, kind: ClaimKind, ids: Sequence[uuid.UUID], token: uuid.UUID) -> bool:
        """After a run found its claim gone: if none of ``ids`` is in this database, say so.
        True if it said so now. (No query while a line would not be written anyway.)"""
        if not self._due():
            return False
        with self.factory() as session:
            if known(session, kind, ids):
                return False
        return self.say(kind, len(ids), token)

    def say(self, kind: ClaimKind, count: int, token: uuid.UUID) -> bool:
        """``count`` claimed rows of ``kind`` under ``token`` are none of this database's."""
        with self._lock:
            now = self.clock()
            if now - self._said < self.every:
                return False
            self._said = now
        log.warning(
            "a %s run for %d %s(s) (claim %s) names none that this database has: another"
            " deployment probably shares this broker database; give each deployment its own"
            " (LIVESTREAMS_BROKER_URL)",
            kind.value,
            count,
            _WHAT[kind],
            token,
            extra={"action": "foreign_claim", "kind": kind.value},
        )
        return True
