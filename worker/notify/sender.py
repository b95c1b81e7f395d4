"""One outbound webhook delivery run: confirm the claim, POST the signed event, record it.

    confirm (attempt written ahead) -> SSRF check -> POST (15 s) -> decide -> finish, in one
    transaction with the attempt's result and the endpoint's health

The body is the event's stored payload, byte for byte, under the event's id as
``webhook-id``: a retry, a second run after a crash, or a replay sends the same message, so a
receiver can dedupe. Nothing here logs a secret or a body.
"""

from __future__ import annotations

import enum
import logging
import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from importlib.metadata import version
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from models import DeliveryState
from models.db import db_now, write_with_retries
from worker.crypto import StreamKeyCipher
from worker.errors import UnsafeWebhookURL
from worker.notify import claims as notify_claims
from worker.notify import signing, ssrf
from worker.notify.rules import EXCERPT, TIMEOUT, DeliveryDecision, DeliveryStep, decide
from worker.settings import Secret, Settings

log = logging.getLogger(__name__)

READ_AT_MOST = 4 * EXCERPT  # bytes of a response body read at all
WRITE_TRIES = 5
USER_AGENT = f"livestream-scheduler/{version('livestream-scheduler')} (webhooks)"


class SendResult(enum.StrEnum):
    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"
    DISABLED = "disabled"  # 410: the endpoint is switched off
    HELD = "held"  # the endpoint was disabled meanwhile: the delivery is held for it
    STALE = "stale"  # the claim was gone: another run has it, or it is finished


_RESULTS = {
    DeliveryStep.DELIVERED: SendResult.DELIVERED,
    DeliveryStep.RETRY: SendResult.RETRYING,
    DeliveryStep.GIVE_UP: SendResult.FAILED,
    DeliveryStep.DISABLE: SendResult.DISABLED,
}


class Sender:
    """Delivers claimed webhook deliveries; one per process (worker.runtime)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        cipher: StreamKeyCipher,
        *,
        owner: uuid.UUID,
        transport: httpx.BaseTransport | None = None,
        resolver: ssrf.Resolver = ssrf.resolve,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.cipher = cipher
        self.rand = rand
        self.lease = settings.webhooks.lease
        self.owner = owner  # this process's heartbeat id: named on every claim it confirms
        if transport is None:
            allow = settings.webhooks.allow_private
            transport = ssrf.transport(allow_private=allow, resolver=resolver)
        self.client = httpx.Client(
            timeout=httpx.Timeout(TIMEOUT), transport=transport, follow_redirects=False
        )

    def close(self) -> None:
        self.client.close()

    def run(self, delivery_id: uuid.UUID, token: uuid.UUID) -> SendResult:
        """Deliver ``delivery_id`` once, if ``token`` still holds it."""
        with self.factory.begin() as session:
            now = db_now(session)
            confirmed = notify_claims.confirm(
                session, delivery_id, token, now, lease=self.lease, owner=self.owner
            )
            if confirmed is None:
                return SendResult.STALE
            held_by, row = confirmed
            job = notify_claims.load(session, delivery_id)
            keys = self._keys(job, now)
        if not job.enabled:
            return self._hold(delivery_id, held_by, row.attempts)
        started = time.monotonic()
        status, excerpt, error, refused = self._post(job.url, str(row.event_id), job.payload, keys)
        duration = time.monotonic() - started
        decision = decide(status, error, row.attempts, self.rand, refused=refused)

        def write(session: Session, now: datetime) -> bool:
            notify_claims.finish_attempt(
                session,
                delivery_id,
                row.attempts,
                now,
                status=status,
                duration=duration,
                excerpt=excerpt,
                error=error,
            )
            return self._finish(
                session, now, delivery_id, held_by, row.endpoint_id, decision, status
            )

        if not write_with_retries(self.factory, write, WRITE_TRIES):
            return SendResult.STALE
        result = _RESULTS[decision.next]
        log.info(
            "webhook delivery %s: %s (%s)",
            delivery_id,
            result.value,
            f"HTTP {status}" if status is not None else error,
            extra={
                "action": "webhook_" + result.value,
                "delivery_id": str(delivery_id),
                "event_id": str(row.event_id),
                "endpoint_id": str(row.endpoint_id),
                "status": status,
                "attempt": row.attempts,
            },
        )
        return result

    def _keys(self, job: Any, now: datetime) -> list[Secret]:
        """The endpoint's secret, and the one it replaced while that is still valid."""
        keys = [self.cipher.decrypt(job.secret_ciphertext)]
        previous, until = job.previous_secret_ciphertext, job.previous_secret_expires_at
        if previous is not None and until is not None and until > now:
            keys.append(self.cipher.decrypt(previous))
        return keys

    def _post(
        self, url: str, msg_id: str, payload: str, keys: list[Secret]
    ) -> tuple[int | None, str | None, str | None, bool]:
        """(status, response excerpt, error, refused by the SSRF guard): one POST, never
        raising."""
        body = payload.encode("utf-8")
        headers = signing.headers(msg_id, int(time.time()), body, keys)
        headers.update({"content-type": "application/json", "user-agent": USER_AGENT})
        deadline = time.monotonic() + TIMEOUT
        try:  # the guard checks each address as the connection is opened (ssrf.transport)
            with self.client.stream("POST", url, content=body, headers=headers) as response:
                read = b""
                for chunk in response.iter_bytes():
                    read += chunk
                    if len(read) >= READ_AT_MOST or time.monotonic() > deadline:
                        break
                excerpt = read[:EXCERPT].decode("utf-8", "replace")
                return response.status_code, excerpt, None, False
        except UnsafeWebhookURL as exc:
            return None, None, f"refused: {exc.problem}", True
        except httpx.TimeoutException:
            return None, None, f"timed out (each phase is limited to {TIMEOUT:g} s)", False
        except httpx.HTTPError as exc:
            return None, None, f"{type(exc).__name__}: {str(exc)[:200]}", False

    def _finish(
        self,
        session: Session,
        now: datetime,
        delivery_id: uuid.UUID,
        token: uuid.UUID,
        endpoint_id: uuid.UUID,
        decision: DeliveryDecision,
        status: int | None,
    ) -> bool:
        if decision.next is DeliveryStep.DELIVERED:
            done = notify_claims.finish(
                session,
                delivery_id,
                token,
                now,
                state=DeliveryState.DELIVERED,
                status=status,
                error=None,
            )
            if done:
                notify_claims.endpoint_succeeded(session, endpoint_id, now)
            return done
        if decision.next is DeliveryStep.RETRY:
            assert decision.delay is not None
            due = now + timedelta(seconds=decision.delay)
            state = DeliveryState.PENDING
        else:
            due, state = None, DeliveryState.FAILED
        done = notify_claims.finish(
            session,
            delivery_id,
            token,
            now,
            state=state,
            status=status,
            error=decision.reason,
            due_at=due,
        )
        if done:
            disable = decision.reason if decision.next is DeliveryStep.DISABLE else None
            notify_claims.endpoint_failed(session, endpoint_id, now, disable=disable)
        return done

    def _hold(self, delivery_id: uuid.UUID, token: uuid.UUID, number: int) -> SendResult:
        """The endpoint was disabled after the claim (disabling parks its deliveries, but a
        change may have written one for it meanwhile): nothing is sent; the delivery is held,
        due as it was, until the endpoint is enabled again."""

        def write(session: Session, now: datetime) -> bool:
            error = "not sent: the endpoint is disabled"
            notify_claims.finish_attempt(
                session,
                delivery_id,
                number,
                now,
                status=None,
                duration=0.0,
                excerpt=None,
                error=error,
            )
            return notify_claims.finish(
                session,
                delivery_id,
                token,
                now,
                state=DeliveryState.HELD,
                status=None,
                error=error,
            )

        write_with_retries(self.factory, write, WRITE_TRIES)
        return SendResult.HELD
