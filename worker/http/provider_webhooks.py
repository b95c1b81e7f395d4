"""POST /v1/webhooks/realtimekit: the provider's signed livestream status webhooks.

Authenticated by the provider's signature over the raw body, never by an API key. Answers:
200 ``{"result": ...}`` once a delivery is taken in (or was before, under its ``rtk-uuid`` or
with the same signed body: ``duplicate``); 401 for a bad or missing signature and 400 for a
signed body we cannot read (the provider never retries a 4xx); 503 while its signing key
cannot be had (it retries a 5xx). Nothing of the payload is stored, logged or answered (it
carries the stream key in the clear); only its digest, to know a replay.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from worker.errors import WebhookError
from worker.http.deps import SessionDep
from worker.http.problems import declared
from worker.inbound import intake
from worker.inbound.signature import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    STATUS_UPDATE,
    WEBHOOK_ID_HEADER,
    WebhookKeys,
    delivery_key,
    parse_delivery,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/webhooks", tags=["provider webhooks"])

WHEN = {
    400: "signed, but the body is not a JSON object, or a statusUpdate lacks streamId or status"
    " (`errors` names the field)",
    401: f"no `{SIGNATURE_HEADER}`, or not the provider's signature of this body",
    503: "the provider's signing key cannot be had now, or the database is unavailable;"
    " the provider retries",
}
# The request as RealtimeKit sends it, for the OpenAPI document: the route reads the raw
# bytes itself (the signature covers exactly them), so FastAPI cannot describe it.
HEADERS = [
    {
        "name": SIGNATURE_HEADER,
        "in": "header",
        "required": True,
        "description": "base64 RSA PKCS#1 v1.5 SHA-256 signature of the raw body",
        "schema": {"type": "string"},
    },
    {
        "name": DELIVERY_HEADER,
        "in": "header",
        "description": "the delivery's id, the same on each retry: a replay is applied once",
        "schema": {"type": "string"},
    },
    {
        "name": WEBHOOK_ID_HEADER,
        "in": "header",
        "description": "the provider's id of the webhook registration",
        "schema": {"type": "string"},
    },
]
BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["event"],
                "properties": {
                    "event": {"type": "string", "example": STATUS_UPDATE},
                    "meetingId": {"type": "string"},
                    "streamId": {"type": "string", "description": "the livestream's id"},
                    "status": {"type": "string", "example": "LIVE"},
                    "streamKey": {"type": "string", "description": "never stored nor logged"},
                    "ingestServer": {"type": "string"},
                    "playbackUrl": {"type": "string"},
                    "updatedAt": {"type": "string", "format": "date-time"},
                },
            }
        }
    },
}


class WebhookAnswer(BaseModel):
    result: Literal["applied", "stale", "unknown_stream", "ignored", "duplicate"]


async def raw_body(request: Request) -> bytes:
    return await request.body()


def get_keys(request: Request) -> WebhookKeys:
    keys = request.app.state.webhook_keys
    assert isinstance(keys, WebhookKeys)
    return keys


RawBody = Annotated[bytes, Depends(raw_body)]
KeysDep = Annotated[WebhookKeys, Depends(get_keys)]


@router.post(
    "/realtimekit",
    summary="Receive a RealtimeKit webhook",
    responses=declared(400, 401, 413, 503, when=WHEN),
    openapi_extra={"parameters": HEADERS, "requestBody": BODY},
)
def realtimekit(
    request: Request, body: RawBody, keys: KeysDep, session: SessionDep
) -> WebhookAnswer:
    """A RealtimeKit webhook (`livestreaming.statusUpdate` is applied; other events are
    counted and ignored), checked against the provider's signature."""
    headers = request.headers
    delivery_id = delivery_key(headers.get(DELIVERY_HEADER), body)
    ids: dict[str, Any] = {
        "delivery_id": delivery_id,
        "webhook_id": (headers.get(WEBHOOK_ID_HEADER) or "")[:64] or None,
    }
    try:
        keys.verify(body, headers.get(SIGNATURE_HEADER))
        delivery = parse_delivery(body)
    except WebhookError as exc:
        log.warning(
            "provider webhook %s refused: %s",
            delivery_id,
            exc,
            extra={"action": "provider_webhook_refused", "reason": type(exc).__name__, **ids},
        )
        raise
    receipt = intake.receive(session, delivery_id, delivery, hashlib.sha256(body).hexdigest())
    stream_id = None if receipt.stream_id is None else str(receipt.stream_id)
    log.info(
        "provider webhook %s (%s): %s",
        delivery_id,
        delivery.event[:64],
        receipt.result.value,
        extra={
            "action": "provider_webhook",
            "result": receipt.result.value,
            "stream_id": stream_id,
            **ids,
        },
    )
    return WebhookAnswer(result=receipt.result.value)
