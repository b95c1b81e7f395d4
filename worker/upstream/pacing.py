"""Staying inside Cloudflare's per-token rate limit, across every worker and beat.

Two mechanisms, both in the database so that they hold for any number of hosts and survive a
flushed broker:
- pacing: the dispatcher claims no more rows than the token's remaining budget in the sliding
  window (calls already sent, plus claimed rows that will call), so the limit is not reached;
- pause: if a 429 comes anyway (another client of the same token), every start that uses the
  token waits until its ``retry-after``, not just the task that got it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from models import TRACKED_STATES, ScheduledStream, StartAttempt, StreamState, UpstreamPause
from models.db import upsert_newer
from worker import metrics
from worker.settings import RateLimit, Secret
from worker.upstream.attempts import calls_since

# Leave headroom under the published limit: the upstream counts arrivals by its own clock and
# window boundaries, which ours only approximate.
SAFETY = 0.9


def token_hash(token: Secret | None) -> str:
    """A stable, non-reversible name for an API token."""
    raw = token.get() if token is not None else ""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]


def pause(session: Session, key: str, until: datetime) -> None:
    """Pause every start for this token until ``until`` (never shortening a longer pause)."""
    metrics.RATE_LIMIT_PAUSES.inc()
    upsert_newer(
        session, UpstreamPause, "token_hash", "paused_until", token_hash=key, paused_until=until
    )


def paused_until(session: Session, key: str, now: datetime) -> datetime | None:
    until = session.scalar(
        select(UpstreamPause.paused_until).where(UpstreamPause.token_hash == key)
    )
    return until if until is not None and until > now else None


def budget(session: Session, limit: RateLimit, now: datetime, *, held_for: float = 0.0) -> int:
    """How many more rows may be claimed now without risking the rate limit.

    ``held_for``: the lookahead: a held tracked row is due by then, so held rows are found
    through the (state, due_at) index, not by scanning every tracked row.
    """
    since = now - timedelta(seconds=limit.window)
    sent = calls_since(session, since)
    S = ScheduledStream
    held = or_(
        S.state == StreamState.STARTING.value,
        and_(
            S.state.in_([s.value for s in TRACKED_STATES]),
            S.due_at <= now + timedelta(seconds=held_for),
            S.claim_token.is_not(None),
        ),
    )
    # Claimed rows that have not sent yet will each make at least one call.
    pending = (
        session.scalar(
            select(func.count()).where(
                held,
                ~select(StartAttempt.id)
                .where(
                    StartAttempt.stream_id == ScheduledStream.id,
                    StartAttempt.claim_token == ScheduledStream.claim_token,
                )
                .exists(),
            )
        )
        or 0
    )
    return max(0, int(limit.requests * SAFETY) - sent - pending)
