"""The webhooks case's platform: a receiver on loopback, in a process of its own.

``python -m benchmarks.receiver PORT`` answers every POST 200 at once (HTTP/1.1 keep-alive, as
the product's senders reuse their connections), and records per message its ``webhook-id``
and when it arrived (``time.time()``, taken before the body is read). Each signature is
checked after the answer is sent, with the ``standardwebhooks`` library when it is installed
(the dev extras), else with the demo platform's few stdlib lines.

A process of its own, so that its work never holds the GIL of the runner, whose threads also
serve the fake RealtimeKit API: the burst's start lateness is measured there. Control, from
the runner only: ``POST /_reset`` (body: the endpoint's secret) forgets what was received and
verifies with that secret from now on; ``GET /_count``; ``GET /_records``: a JSON list of
``[webhook-id, arrived, verified]``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Verify = Callable[[str, dict[str, str], bytes], bool]


def _verifier() -> tuple[str, Verify]:
    """(its name, verify(secret, headers, body))."""
    try:
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError
    except ImportError:
        from worker.dev.demo_receiver import verified

        return "worker.dev.demo_receiver", verified

    def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
        try:
            Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            return False
        return True

    return "standardwebhooks", verify


VERIFIER, _verify = _verifier()


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secret = ""
        self.records: list[tuple[str, float, bool]] = []


def handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection per sending process

        def _answer(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def do_POST(self) -> None:
            arrived = time.time()
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path == "/_reset":
                with state.lock:
                    state.secret, state.records = body.decode(), []
                self._answer(204)
                return
            self._answer(200)
            headers = {k.lower(): v for k, v in self.headers.items()}
            with state.lock:
                secret = state.secret
            ok = bool(secret) and _verify(secret, headers, body)
            with state.lock:
                state.records.append((headers.get("webhook-id", ""), arrived, ok))

        def do_GET(self) -> None:
            with state.lock:
                found: Any = len(state.records) if self.path == "/_count" else state.records
                found = list(found) if isinstance(found, list) else found
            self._answer(200, json.dumps(found).encode())

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


def main(argv: list[str]) -> int:
    server = ThreadingHTTPServer(("127.0.0.1", int(argv[0])), handler(State()))
    server.daemon_threads = True
    print(f"receiver listening on 127.0.0.1:{server.server_address[1]} ({VERIFIER})", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
