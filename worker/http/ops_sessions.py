"""Ops page sessions ended by signing out, before their cookie expires.

The cookie is signed, not stored, so deleting it in the browser ends nothing: a copy (from a
shared machine, a proxy log, a backup) kept working for the rest of its 12 hours. Signing out
writes the session's id here and every page refuses it from then on. A row is pruned once
the cookie it refuses has expired on its own.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import EndedOpsSession

E = EndedOpsSession


def ended(session: Session, session_id: str) -> bool:
    """Whether the session ``session_id`` was signed out."""
    return session.scalar(select(E.session_id).where(E.session_id == session_id)) is not None


def end(
    session: Session, session_id: str, key_id: uuid.UUID, expires_at: datetime, now: datetime
) -> None:
    """END_SESSION: refuse ``session_id`` from now on (again: no change); and PRUNE_ENDED the
    rows whose cookies have expired anyway."""
    session.execute(delete(E).where(E.expires_at <= now))
    try:
        with session.begin_nested():  # a second sign-out of the same session, concurrently
            session.add(
                E(session_id=session_id, api_key_id=key_id, ended_at=now, expires_at=expires_at)
            )
    except IntegrityError:
        pass
