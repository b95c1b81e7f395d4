"""API keys for the HTTP app: only a hash of each key is stored (worker.http.apikeys)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


class ApiKey(Base):
    """One API key: its name, visible prefix, the hash of the whole key, and its scopes."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # The short, non-secret part of the key (`lsk_<prefix>_...`): finds the row, shown in lists.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    # Hex sha256 of the whole key. The key is 256 random bits, so a fast hash is enough: there
    # is nothing to brute-force that a slow password hash (bcrypt, argon2) would protect.
    hash: Mapped[str] = mapped_column(String(64))
    # Space-separated scope names (worker.http.apikeys.SCOPES).
    scopes: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:  # never the hash
        return f"<ApiKey {self.name} lsk_{self.prefix}_…>"


class EndedOpsSession(Base):
    """An ops page session signed out before its cookie expires: the cookie is refused from
    then on, even where a copy of it survives the browser's. Kept until the cookie would have
    expired anyway (``expires_at``), then pruned."""

    __tablename__ = "ended_ops_sessions"
    __table_args__ = (Index("ix_ended_ops_sessions_expires_at", "expires_at"),)

    # The cookie's random session id (worker.http.pages.signing), not a secret on its own.
    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("api_keys.id"))
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
