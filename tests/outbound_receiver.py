"""A platform's webhook receiver on loopback: verifies every POST with the `standardwebhooks`
reference library (never the product's signer) and answers as scripted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.webhook_receiver import WebhookReceiver


@dataclass(frozen=True)
class Got:
    headers: dict[str, str]
    body: bytes
    verified_by: tuple[int, ...]  # which of the receiver's secrets verified it
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class PlatformReceiver(WebhookReceiver):
    """``with PlatformReceiver() as rx``: ``rx.secrets = [...]`` to verify with,
    ``rx.answer(500, 410)`` scripts the next answers (then 200), ``rx.delay`` holds each."""

    def __init__(self) -> None:
        super().__init__("/hooks")
        self.secrets: list[str] = []

    @property
    def got(self) -> list[Got]:
        return self.received

    def record(self, path: str, headers: dict[str, str], body: bytes, status: int) -> Got:
        verified = []
        for index, secret in enumerate(list(self.secrets)):
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            verified.append(index)
        return Got(headers, body, tuple(verified), status)

    def reply(self, status: int) -> bytes:
        return b'{"ok": true}' if status < 300 else b"no thanks " * 200

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Got]:
        """Every webhook got, once there are at least ``count``."""
        super().wait_for(count, timeout)
        return list(self.received)
