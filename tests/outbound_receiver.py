"""A platform's webhook receiver on loopback: verifies every POST with the `standardwebhooks`
reference library (never the product's signer) and answers as scripted."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Got:
    headers: dict[str, str]
    body: bytes
    verified_by: tuple[int, ...]  # which of the receiver's secrets verified it
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class PlatformReceiver:
    """``with PlatformReceiver() as rx``: ``rx.secrets = [...]`` to verify with,
    ``rx.answer(500, 410)`` scripts the next answers (then 200), ``rx.delay`` holds each."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.got: list[Got] = []
        self.delay = 0.0
        self._answers: deque[int] = deque()
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._cond:
                    status = receiver._answers.popleft() if receiver._answers else 200
                    secrets = list(receiver.secrets)
                    delay = receiver.delay
                time.sleep(delay)
                verified = []
                for index, secret in enumerate(secrets):
                    try:
                        Webhook(secret).verify(body, headers)
                    except WebhookVerificationError:
                        continue
                    verified.append(index)
                with receiver._cond:
                    receiver.got.append(Got(headers, body, tuple(verified), status))
                    receiver._cond.notify_all()
                reply = b'{"ok": true}' if status < 300 else b"no thanks " * 200
                self.send_response(status)
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def answer(self, *statuses: int) -> None:
        with self._cond:
            self._answers.extend(statuses)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Got]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.got) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"got {len(self.got)} webhooks, wanted {count}")
                self._cond.wait(left)
            return list(self.got)

    def __enter__(self) -> PlatformReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
