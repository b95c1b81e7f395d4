"""The ops page's session cookie and CSRF tokens, signed with HMAC-SHA256.

The signing secret is derived from LIVESTREAMS_SECRET_KEY (or the embedded default's key file,
worker.crypto.key_material): one setting holds every server secret. Each key gives its own
secret; the newest signs and all verify, so rotating the setting (new key first, old kept)
keeps sessions, and dropping a key ends the sessions it signed.

A cookie carries the API key's id, a random session id and an expiry, never the API key: a
stolen cookie dies with its expiry or with the key's revocation, and shows no key. A CSRF
token is an HMAC of the session id, so a form made by another site (which cannot read the
cookie) cannot carry a valid one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from worker.settings import Secret

# Context for the derivation, so these secrets never equal a Fernet key or each other.
_INFO = b"livestreams ops page session v1"


@dataclass(frozen=True)
class Signed:
    """What a valid session cookie says."""

    key_id: uuid.UUID
    session_id: str
    expires_at: datetime


class Signer:
    """Signs and checks cookies and tokens; its repr shows nothing."""

    def __init__(self, keys: tuple[Secret, ...]) -> None:
        if not keys:
            raise ValueError("no key material")
        self._secrets = [hmac.new(k.get().encode(), _INFO, hashlib.sha256).digest() for k in keys]

    def __repr__(self) -> str:
        return "Signer(**********)"

    @staticmethod
    def _mac(secret: bytes, purpose: str, payload: str) -> bytes:
        # The purpose is part of what is signed: a session's MAC is never a valid CSRF token.
        return hmac.new(secret, f"{purpose}\0{payload}".encode(), hashlib.sha256).digest()

    def sign(self, purpose: str, payload: str) -> str:
        return _b64(self._mac(self._secrets[0], purpose, payload))

    def verify(self, purpose: str, payload: str, mac: str) -> bool:
        """Whether ``mac`` signs ``payload`` for ``purpose`` under any of the keys (rotation);
        compared in constant time."""
        given = mac.encode()
        return any(
            hmac.compare_digest(given, _b64(self._mac(secret, purpose, payload)).encode())
            for secret in self._secrets
        )

    def session_cookie(self, key_id: uuid.UUID, expires_at: datetime) -> str:
        """A new session for ``key_id`` (a fresh session id each sign-in) until ``expires_at``."""
        payload = f"{key_id}|{secrets.token_urlsafe(16)}|{int(expires_at.timestamp())}"
        return f"{_b64(payload.encode())}.{self.sign('session', payload)}"

    def read_session(self, cookie: str | None, now: datetime) -> Signed | None:
        """The session a cookie carries, or None when it is missing, forged or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        encoded, mac = cookie.split(".")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if not self.verify("session", payload, mac):
            return None
        key_id, session_id, expires = payload.split("|")
        expires_at = datetime.fromtimestamp(int(expires), UTC)
        if expires_at <= now:
            return None
        return Signed(uuid.UUID(key_id), session_id, expires_at)

    def csrf_token(self, session_id: str) -> str:
        return self.sign("csrf", session_id)

    def csrf_ok(self, session_id: str, token: str | None) -> bool:
        return bool(token) and self.verify("csrf", session_id, token or "")


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
