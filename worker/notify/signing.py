"""Standard Webhooks 1.0 signatures (https://www.standardwebhooks.com/, "Signature scheme").

    webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")> [v1,<...>]

The key is the base64 part of a ``whsec_...`` secret. During a rotation both secrets sign, so
a receiver with either verifies. Kept here (a dozen lines) rather than taken from the
``standardwebhooks`` package, which signs with one secret at a time; the tests verify with
that package, so the product's signer is checked against an independent implementation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from worker.settings import Secret

PREFIX = "whsec_"
KEY_BYTES = 32


def new_secret() -> Secret:
    """A fresh ``whsec_`` secret: 256 random bits."""
    return Secret(PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii"))


def key_of(secret: Secret) -> bytes:
    value = secret.get()
    value = value.removeprefix(PREFIX)
    return base64.b64decode(value)


def signature(msg_id: str, timestamp: int, body: bytes, secret: Secret) -> str:
    """One ``v1,<base64>`` entry."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_of(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(msg_id: str, timestamp: int, body: bytes, keys: list[Secret]) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with each of ``keys`` (newest first)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(msg_id, timestamp, body, k) for k in keys),
    }
