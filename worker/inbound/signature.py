"""The provider's signed webhooks: reading a delivery, and checking its signature.

RealtimeKit signs the raw body of each delivery (RSA PKCS#1 v1.5 over SHA-256) and sends the
signature, base64, in ``rtk-signature``; ``rtk-uuid`` names the delivery (the same on each of
its retries). The public key is configured (LIVESTREAMS_RTK_WEBHOOK_PUBLIC_KEY) or fetched from
the provider's ``/.well-known/webhooks.json`` and kept by the process (``WebhookKeys``).

All of this is pure but ``fetch_key`` and ``WebhookKeys``; none of it touches the database.
A payload carries the stream key in the clear: nothing here keeps it, logs it or puts any of
it in an error message (a ``Delivery`` holds only the fields below).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from worker.errors import BadDelivery, BadSignature, WebhookKeyUnavailable

# The settings check a configured key when they are read; the intake reads fetched keys with
# the same function, which lives there so that neither module imports the other.
from worker.settings import Settings, load_public_key

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "rtk-signature"
DELIVERY_HEADER = "rtk-uuid"
WEBHOOK_ID_HEADER = "rtk-webhook-id"
STATUS_UPDATE = "livestreaming.statusUpdate"
# provider_webhooks.delivery_id is 64 characters: a longer (or missing) id is hashed to fit.
DELIVERY_ID_MAX = 64
KEY_FETCH_TIMEOUT = 5.0  # seconds per phase (connect, read): a request thread waits for it
# A signature that fails with a fetched key fetches the key again at most this often: enough
# to follow a rotation, too seldom for forged deliveries to make us hammer the provider.
KEY_REFRESH_EVERY = 300.0
# After a failed fetch, none is tried for this long: deliveries meanwhile are answered 503 at
# once (the provider retries them) instead of each holding a thread for the fetch timeout.
KEY_RETRY_AFTER = 10.0


@dataclass(frozen=True)
class Delivery:
    """What a delivery says that we use. Never the stream key, nor any other payload field."""

    event: str
    livestream_id: str | None = None  # streamId; statusUpdate only
    status: str | None = None  # as sent: LIVE, OFFLINE, IDLE, ERRORED, INVOKED or anything
    updated_at: datetime | None = None  # updatedAt, when given and readable

    @property
    def is_status_update(self) -> bool:
        return self.event == STATUS_UPDATE


def parse_delivery(body: bytes) -> Delivery:
    """Read a signed body; raises BadDelivery naming the field (never quoting a value)."""
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise BadDelivery("body", "is not JSON") from None
    if not isinstance(data, dict):
        raise BadDelivery("body", "must be a JSON object")
    event = _text(data, "event")
    if event != STATUS_UPDATE:
        return Delivery(event)
    return Delivery(
        event,
        livestream_id=_text(data, "streamId"),
        status=_text(data, "status"),
        updated_at=parse_instant(data.get("updatedAt")),
    )


def _text(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        problem = "is missing" if value is None else "must be a non-empty string"
        raise BadDelivery(field, problem)
    # JSON may spell what no database stores: NUL (PostgreSQL refuses it, a 503 the provider
    # would retry for ever) and lone surrogates (no UTF-8 encoding: a 500).
    if "\x00" in value or not _utf8(value):
        raise BadDelivery(field, "holds characters that cannot be stored (NUL, lone surrogates)")
    return value


def _utf8(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def parse_instant(value: object) -> datetime | None:
    """``updatedAt`` (ISO 8601, e.g. 2026-11-29T10:00:00.123Z) in UTC; None when it cannot be
    read: the caller then takes the database's now, so that an odd clock field never refuses
    a delivery the provider would not send again."""
    if not isinstance(value, str):
        return None
    try:
        instant = datetime.fromisoformat(value)
        if instant.tzinfo is None:
            return instant.replace(tzinfo=UTC)
        return instant.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def delivery_key(header: str | None, body: bytes) -> str:
    """The dedupe key: ``rtk-uuid`` as sent; without one, ``sha256:`` and the digest of the
    body (a retry of a delivery repeats its body); either hashed to fit when too long."""
    given = (header or "").strip()
    if given and len(given) <= DELIVERY_ID_MAX:
        return given
    digest = hashlib.sha256(given.encode() if given else body).hexdigest()
    return f"sha256:{digest}"[:DELIVERY_ID_MAX]


def decode_signature(header: str | None) -> bytes:
    """The signature bytes of an ``rtk-signature`` header; raises BadSignature."""
    if header is None or not header.strip():
        raise BadSignature(f"no {SIGNATURE_HEADER} header")
    try:
        signature = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature(f"{SIGNATURE_HEADER} is not base64") from None
    if not signature:
        raise BadSignature(f"{SIGNATURE_HEADER} is empty")
    return signature


def signature_valid(key: RSAPublicKey, body: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``key``'s over exactly these bytes (never a re-serialisation:
    any other spelling of the same JSON has another signature)."""
    try:
        key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def parse_key_document(content: bytes) -> RSAPublicKey:
    """The key in a ``/.well-known/webhooks.json`` answer:
    ``{"success": true, "data": {"publicKey": "-----BEGIN PUBLIC KEY-----..."}}``."""
    try:
        document = json.loads(content)
    except (ValueError, RecursionError):
        raise WebhookKeyUnavailable("the key document is not JSON") from None
    if not isinstance(document, dict) or document.get("success") is not True:
        raise WebhookKeyUnavailable("the key document does not say success")
    data = document.get("data")
    pem = data.get("publicKey") if isinstance(data, dict) else None
    if not isinstance(pem, str):
        raise WebhookKeyUnavailable("the key document holds no data.publicKey")
    try:
        return load_public_key(pem)
    except ValueError as exc:
        raise WebhookKeyUnavailable(f"the key document's publicKey is {exc}") from None


def fetch_key(
    url: str, *, timeout: float = KEY_FETCH_TIMEOUT, transport: httpx.BaseTransport | None = None
) -> RSAPublicKey:
    """GET the provider's key document at ``url``; raises WebhookKeyUnavailable."""
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            answer = client.get(url, headers={"accept": "application/json"})
    except httpx.HTTPError as exc:
        raise WebhookKeyUnavailable(f"cannot fetch {url}: {type(exc).__name__}") from exc
    if answer.status_code != 200:
        raise WebhookKeyUnavailable(f"{url} answered {answer.status_code}")
    return parse_key_document(answer.content)


class WebhookKeys:
    """The provider's signing key, for one process.

    The configured key, if any, is the only one. Otherwise the key is fetched from ``url``
    when first needed and kept; a signature that fails with it fetches it again (the provider
    rotated its key), at most once per ``refresh_every``. A key that cannot be had raises
    WebhookKeyUnavailable (HTTP 503: the provider retries), and no fetch is tried again for
    ``retry_after``. Thread-safe: requests run in uvicorn's threadpool.
    """

    def __init__(
        self,
        url: str,
        *,
        given: RSAPublicKey | None = None,
        fetch: Callable[[str], RSAPublicKey] = fetch_key,
        clock: Callable[[], float] = time.monotonic,
        refresh_every: float = KEY_REFRESH_EVERY,
        retry_after: float = KEY_RETRY_AFTER,
    ) -> None:
        self.url = url
        self._given = given
        self._fetch = fetch
        self._clock = clock
        self._refresh_every = refresh_every
        self._retry_after = retry_after
        self._lock = threading.Lock()
        self._fetched: tuple[RSAPublicKey, float] | None = None  # (key, when)
        self._failed_at: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookKeys:
        pem = settings.webhooks.provider_public_key
        # Settings checked the PEM already (LIVESTREAMS_RTK_WEBHOOK_PUBLIC_KEY).
        return cls(settings.webhooks.key_url, given=load_public_key(pem) if pem else None)

    def verify(self, body: bytes, signature_header: str | None) -> None:
        """Return if ``signature_header`` is the provider's signature of ``body``; raise
        BadSignature if not, WebhookKeyUnavailable if that cannot be known now."""
        signature = decode_signature(signature_header)  # refused before any fetch
        if self._given is not None:
            if not signature_valid(self._given, body, signature):
                raise BadSignature("the signature does not match the configured key")
            return
        fetched = self._fetched or self._first()
        if signature_valid(fetched[0], body, signature):
            return
        fresh = self._refreshed(fetched)
        if fresh is None or not signature_valid(fresh[0], body, signature):
            raise BadSignature("the signature does not match the provider's key")

    def _first(self) -> tuple[RSAPublicKey, float]:
        with self._lock:
            return self._fetched or self._fetch_locked()

    def _refreshed(self, seen: tuple[RSAPublicKey, float]) -> tuple[RSAPublicKey, float] | None:
        """A newer key than ``seen``, fetched now unless that was done lately; None if not."""
        with self._lock:
            current = self._fetched
            if current is not None and current is not seen:
                return current  # another request fetched it meanwhile
            if self._clock() - seen[1] < self._refresh_every:
                return None
            return self._fetch_locked()

    def _fetch_locked(self) -> tuple[RSAPublicKey, float]:
        now = self._clock()
        if self._failed_at is not None and now - self._failed_at < self._retry_after:
            raise WebhookKeyUnavailable(
                f"fetching the key from {self.url} failed {now - self._failed_at:.0f} s ago"
            )
        try:
            key = self._fetch(self.url)
        except WebhookKeyUnavailable as exc:
            self._failed_at = now
            log.warning(
                "the provider's webhook signing key is unavailable: %s",
                exc,
                extra={"action": "webhook_key_unavailable", "url": self.url},
            )
            raise
        self._failed_at = None
        self._fetched = (key, self._clock())
        log.info(
            "fetched the provider's webhook signing key from %s",
            self.url,
            extra={"action": "webhook_key_fetch", "url": self.url},
        )
        return self._fetched
