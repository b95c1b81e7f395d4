"""The provider's side of its webhooks, for tests: a signing key, signed deliveries, and a
loopback `/.well-known/webhooks.json` that counts how often it is asked."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PATH = "/v1/webhooks/realtimekit"
STATUS_UPDATE = "livestreaming.statusUpdate"


def signing_key(name: str = "provider") -> rsa.RSAPrivateKey:
    """One RSA key per name for the whole run (making one takes a while)."""
    return _made(name)


@cache
def _made(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign(body: bytes, key: rsa.RSAPrivateKey | None = None) -> str:
    key = key or signing_key()
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def provider_time(instant: datetime) -> str:
    """An instant as RealtimeKit spells it: 2026-11-29T10:00:00.123Z."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def status_update(stream_id: str, status: str, **fields: Any) -> dict[str, Any]:
    """A livestreaming.statusUpdate body as RealtimeKit sends it, updated now."""
    return {
        "event": STATUS_UPDATE,
        "meetingId": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "streamId": stream_id,
        "status": status,
        "streamKey": "sk_live_notasecret",
        "ingestServer": "rtmps://live.example.com:443/live/",
        "playbackUrl": "https://play.example.com/hls/x.m3u8",
        "updatedAt": provider_time(datetime.now(UTC)),
        **fields,
    }


def encode(payload: dict[str, Any] | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def signed_headers(
    body: bytes, delivery: str | None, key: rsa.RSAPrivateKey | None = None
) -> dict[str, str]:
    headers = {"content-type": "application/json", "rtk-signature": sign(body, key)}
    headers["rtk-webhook-id"] = "wh-test"
    if delivery is not None:
        headers["rtk-uuid"] = delivery
    return headers


class KeyServer:
    """A loopback server answering ``/.well-known/webhooks.json`` with ``pem`` (or ``status``
    and ``body`` when set), counting the requests."""

    def __init__(self, pem: str) -> None:
        self.pem = pem
        self.status = 200
        self.body: bytes | None = None
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                document = {"success": True, "data": {"publicKey": server.pem}, "message": ""}
                body = server.body if server.body is not None else json.dumps(document).encode()
                self.send_response(server.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/.well-known/webhooks.json"

    @contextmanager
    def running(self) -> Iterator[KeyServer]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(5)
