"""A webhook receiver on loopback for tests: records every POST, answers as scripted.

Plain ``http.server`` in a thread, so the fake's deliveries cross a real socket.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    answered: int
    at: float  # time.monotonic()


class WebhookReceiver:
    """``with WebhookReceiver() as rx: rx.url``; ``rx.answer(503, 503)`` answers the next two
    POSTs with 503, then 200 again; ``rx.delay = 2`` holds each answer for two seconds."""

    def __init__(self, path: str = "/v1/webhooks/realtimekit") -> None:
        self.path = path
        self.received: list[Any] = []  # what record() made of each POST
        self.delay = 0.0
        self._answers: deque[int] = deque()
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._cond:
                    status = receiver._answers.popleft() if receiver._answers else 200
                    delay = receiver.delay
                time.sleep(delay)
                # Recorded before answering: once the sender has its answer, the test sees it.
                headers = {k.lower(): v for k, v in self.headers.items()}
                got = receiver.record(self.path, headers, body, status)
                with receiver._cond:
                    receiver.received.append(got)
                    receiver._cond.notify_all()
                reply = receiver.reply(status)
                self.send_response(status)
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def record(self, path: str, headers: dict[str, str], body: bytes, status: int) -> Any:
        """What the test keeps of one POST (a subclass may check it too)."""
        return Received(path, headers, body, status, time.monotonic())

    def reply(self, status: int) -> bytes:
        """The body of the answer."""
        return b""

    def answer(self, *statuses: int) -> None:
        with self._cond:
            self._answers.extend(statuses)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Any]:
        """The first ``count`` POSTs, waiting for them; AssertionError on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} webhooks received, not {count}")
            return list(self.received[:count])

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def public_key(fake: Any) -> Any:
    """The fake's webhook key, fetched the way a receiver would: from its well-known URL."""
    answer = httpx.get(fake.public_key_url, timeout=5)
    assert answer.status_code == 200
    doc = answer.json()
    assert doc["success"] is True and doc["message"] == ""
    return serialization.load_pem_public_key(doc["data"]["publicKey"].encode())


def signature_valid(key: Any, received: Received) -> bool:
    signature = base64.b64decode(received.headers["rtk-signature"])
    try:
        key.verify(signature, received.body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
