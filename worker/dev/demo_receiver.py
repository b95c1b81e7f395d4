"""The demo's event platform: a webhook receiver on loopback that checks every signature.

It verifies the Standard Webhooks signature itself, in a few lines of its own (not the
product's signer), as a platform would: HMAC-SHA256 over ``{webhook-id}.{webhook-timestamp}.
{body}`` with the key in the ``whsec_`` secret, compared with each ``v1,`` entry of
``webhook-signature``. Stdlib only: it runs in the demo's default install.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Does ``webhook-signature`` hold a v1 signature of this delivery by ``secret``?"""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [part.removeprefix("v1,") for part in headers.get("webhook-signature", "").split()]
    return any(hmac.compare_digest(expected, sig) for sig in given)


class Receiver:
    """``with Receiver(on_event) as rx``: ``rx.url``; ``rx.secret`` must be set before events
    come. ``on_event(event, ok)`` is called for each delivery; ``rx.events`` keeps them."""

    def __init__(self, on_event: Callable[[dict[str, Any], bool], None]) -> None:
        self.secret = ""
        self.events: list[tuple[dict[str, Any], bool]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                ok = bool(receiver.secret) and verified(receiver.secret, headers, body)
                event = json.loads(body) if ok else {}
                with receiver._lock:
                    receiver.events.append((event, ok))
                on_event(event, ok)
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/livestream-events"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
