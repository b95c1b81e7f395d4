"""A fake RealtimeKit API on loopback, following tests/contracts/, with fault injection.

Used by the tests, ``livestreams fake-api`` and the demo: nothing ever calls the internet.
Stdlib only, because it ships in the wheel and runs in the demo without dev dependencies.

Behaviour (where the contract is silent, the choice is noted):
- ``Authorization: Bearer <token>`` is required: else 401, v4 envelope, code 10000.
- account/app ids over 32 characters, or a meeting id that is not a UUID: 404, v4 envelope,
  code 7003 ("Could not route..."), as Cloudflare answers for bad identifiers.
- A start body must be a JSON object; ``name`` null or ``^[a-zA-Z0-9-_]*$``; ``video_config``
  an object of positive integers. Else 422 in RealtimeKit's envelope. Stricter than the
  contract on purpose: a top-level ``width``/``height`` is refused (422), so a wrongly nested
  body fails every test instead of being silently ignored.
- One active livestream per meeting: a start while one is active gets 409 (RealtimeKit
  envelope) and creates nothing. Stop ends it (status IDLE). Status INVOKED turns LIVE
  ``live_after`` seconds after creation when set.
- Rate limit (when set): N requests per window per token, then 429 with ``retry-after`` for
  the rest of the window, v4 envelope code 1015 (the contract wants codes >= 1000).

Order per request: record, latency, auth, rate limit, route and validation, then a scripted
fault, else a random fault, else the normal answer. Control endpoints under ``/__fake__/`` are
never recorded, delayed or faulted; their JSON is documented on ``FakeRealtimeKit.configure``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import math
import random
import re
import secrets
import socket
import sys
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TextIO

log = logging.getLogger(__name__)

ENDPOINTS = ("start", "active", "stop", "get")
CONTROL = "/__fake__/"
MAX_BODY = 1 << 20
NAME = re.compile(r"[a-zA-Z0-9_-]*")
HTML_502 = (
    b"<!DOCTYPE html>\n<html><head><title>api.cloudflare.com | 502: Bad gateway</title></head>"
    b"<body><h1>Bad gateway</h1><p>The web server reported a bad gateway error.</p>"
    + b"<!-- padding -->" * 200
    + b"</body></html>\n"
)
_APP = r"/accounts/([^/]+)/realtime/kit/([^/]+)"
_ROUTES = [
    ("start", "POST", re.compile(_APP + r"/meetings/([^/]+)/livestreams")),
    ("active", "GET", re.compile(_APP + r"/meetings/([^/]+)/active-livestream")),
    ("stop", "POST", re.compile(_APP + r"/meetings/([^/]+)/active-livestream/stop")),
    ("get", "GET", re.compile(_APP + r"/livestreams/([^/]+)")),
]


@dataclass(frozen=True)
class Fault:
    """One injected answer. ``action``: respond (status/body), hang, or drop the connection.

    ``create``: on a start, create the livestream first (the ambiguous cases).
    """

    action: str = "respond"
    status: int = 503
    body: bytes | None = None  # None: an error envelope for ``status``
    content_type: str = "application/json"
    retry_after: str | None = None
    create: bool = False


def parse_fault(spec: object) -> Fault:
    """A fault from its JSON form: 503 | "html502" | "hang" | "drop" | "hang_before" |
    "drop_before" | {"status", "retry_after", "body", "content_type", "create"} |
    {"action": "hang"|"drop", "create": bool}. "hang"/"drop" create the livestream first."""
    if isinstance(spec, Fault):
        return spec
    if isinstance(spec, int) and not isinstance(spec, bool) and 100 <= spec <= 599:
        return Fault(status=spec, retry_after="1" if spec == 429 else None)
    if spec == "html502":
        return Fault(status=502, body=HTML_502, content_type="text/html; charset=UTF-8")
    if spec in ("hang", "drop", "hang_before", "drop_before"):
        text = str(spec)
        return Fault(action=text.removesuffix("_before"), create=not text.endswith("_before"))
    if isinstance(spec, dict):
        known = {"action", "status", "retry_after", "body", "content_type", "create"}
        if set(spec) - known or spec.get("action", "respond") not in ("respond", "hang", "drop"):
            raise ValueError(f"unknown fault keys or action in {spec!r}")
        status = spec.get("status", 503)
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"fault status must be 100..599, got {status!r}")
        body, retry = spec.get("body"), spec.get("retry_after")
        return Fault(
            action=str(spec.get("action", "respond")),
            status=status,
            body=None if body is None else str(body).encode(),
            content_type=str(spec.get("content_type", "application/json")),
            retry_after=None if retry is None else str(retry),
            create=bool(spec.get("create", False)),
        )
    raise ValueError(f"not a fault: {spec!r}")


@dataclass(frozen=True)
class Created:
    """A livestream the fake created: what tests count to prove "one start per meeting"."""

    id: str
    stream_key: str


@dataclass
class RecordedRequest:
    """One request as received (the Authorization header left out); ``response`` is the
    status sent, or "hang"/"drop", filled in when known."""

    method: str
    path: str
    endpoint: str | None
    meeting_id: str | None
    body: str
    headers: dict[str, str]
    arrived: float  # time.time()
    response: int | str | None = None


@dataclass
class _Stream:
    id: str
    meeting_id: str
    name: str | None
    stream_key: str
    created: float
    stopped: float | None = None

    def as_json(self, live_after: float | None, *, nullable_name: bool = True) -> dict[str, Any]:
        status = "INVOKED"
        if self.stopped is not None:
            status = "IDLE"
        elif live_after is not None and time.time() - self.created >= live_after:
            status = "LIVE"
        doc: dict[str, Any] = {
            "id": self.id,
            "meeting_id": self.meeting_id,
            "name": self.name,
            "status": status,
            "ingest_server": "rtmps://live.fake-realtimekit.invalid:443/live/",
            "playback_url": f"https://customer-fake.invalid/{self.id}/manifest/video.m3u8",
            "stream_key": self.stream_key,
            "created_at": _iso(self.created),
            "updated_at": _iso(self.stopped or self.created),
        }
        if self.name is None and not nullable_name:
            del doc["name"]  # GET /livestreams/{id} declares name as a non-nullable string
        return doc


class FakeRealtimeKit:
    """The fake server; ``with FakeRealtimeKit() as fake: fake.base_url`` serves in a thread."""

    # Set by reset(); every one guarded by _lock.
    _scripts: list[tuple[str, str | None, deque[Fault]]]
    _latency: tuple[float, float, str] | None
    _rates: list[tuple[str, float]] | None
    _rates_endpoint: str
    _rng: random.Random
    _limit: tuple[int, float] | None
    _windows: dict[str, list[float]]  # token -> [window start, requests in it]
    _streams: dict[str, _Stream]
    _active: dict[str, str]  # meeting id -> active livestream id
    _created: dict[str, list[Created]]
    _records: list[RecordedRequest]
    _responses: Counter[str]
    _in_flight: int
    _max_in_flight: int

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = "fake-token",  # noqa: S107 - the fake's own token, loopback only
        live_after: float | None = None,
        hang_seconds: float = 30.0,
    ) -> None:
        self.host = _loopback(host)
        self.token = token
        self._port = port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self.live_after = live_after
        self.hang_seconds = hang_seconds
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/client/v4"

    @property
    def control_url(self) -> str:
        return self.base_url.removesuffix("/client/v4") + CONTROL.rstrip("/")

    def bind(self) -> None:
        if self._server is None:
            self._stopping.clear()
            cls = _Server6 if ":" in self.host else _Server
            self._server = cls((self.host, self._port), _Handler)
            self._server.fake = self

    def start(self) -> FakeRealtimeKit:
        self.bind()
        assert self._server is not None
        self._thread = threading.Thread(
            # A short poll makes stop() (and each test's teardown) quick.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-realtimekit",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop()`` (from another thread) or Ctrl-C."""
        self.bind()
        assert self._server is not None
        try:
            self._server.serve_forever()
        finally:
            self.stop()

    def stop(self) -> None:
        server, self._server = self._server, None
        self._stopping.set()  # releases hanging handlers at once
        if server is None:
            return
        if self._thread is not None and self._thread is not threading.current_thread():
            server.shutdown()
            self._thread.join(5)
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # idle keep-alive connections would keep their threads blocked
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FakeRealtimeKit:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- fault injection -------------------------------------------------------------------
    def configure(self, spec: dict[str, Any]) -> None:
        """Apply a fault spec (also ``POST /__fake__/faults``). Every key is optional::

            {"script": [{"endpoint": "start", "meeting_id": "<uuid>" (optional),
                         "faults": [503, 409, {"status": 429, "retry_after": "7"},
                                    "html502", "hang", "drop", {"status": 500, "create": true}]}],
             "latency": {"fixed": 0.2, "jitter": 0.1, "endpoint": "start"} | null,
             "rates": {"5xx": 0.1, "409": 0.0, "429": 0.05, "html502": 0.0,
                       "hang": 0.02, "drop": 0.01} | null,
             "rates_endpoint": "start", "seed": 42,
             "rate_limit": {"requests": 1200, "window": 300} | null,
             "hang_seconds": 30, "live_after": 5 | null}

        ``endpoint`` is one of start, active, stop, get, or "*". Scripted faults are used one
        per matching request, in order. Raises ValueError and changes nothing on a bad spec.
        """
        if not isinstance(spec, dict) or set(spec) - _SPEC_KEYS:
            raise ValueError(f"unknown keys: {sorted(set(spec) - _SPEC_KEYS)}")
        scripts = [_parse_script(s) for s in spec.get("script", [])]
        latency = _parse_latency(spec["latency"]) if spec.get("latency") else None
        rates = _parse_rates(spec["rates"]) if spec.get("rates") else None
        endpoint = _endpoint(spec.get("rates_endpoint", "start"))
        limit = _parse_limit(spec["rate_limit"]) if spec.get("rate_limit") else None
        with self._lock:
            self._scripts.extend(scripts)
            if "latency" in spec:
                self._latency = latency
            if "rates" in spec:
                self._rates = rates
            if "rates_endpoint" in spec:
                self._rates_endpoint = endpoint
            if "seed" in spec:
                self._rng = random.Random(spec["seed"])
            if "rate_limit" in spec:
                self._limit, self._windows = limit, {}
            if "hang_seconds" in spec:
                self.hang_seconds = float(spec["hang_seconds"])
            if "live_after" in spec:
                self.live_after = None if spec["live_after"] is None else float(spec["live_after"])

    def script(self, endpoint: str, *faults: object, meeting_id: str | None = None) -> None:
        """Answer the next ``len(faults)`` matching requests with these faults, in order."""
        self.configure(
            {"script": [{"endpoint": endpoint, "meeting_id": meeting_id, "faults": list(faults)}]}
        )

    def set_latency(self, fixed: float, jitter: float = 0.0, endpoint: str = "*") -> None:
        self.configure({"latency": {"fixed": fixed, "jitter": jitter, "endpoint": endpoint}})

    def set_rates(self, rates: dict[str, float], *, seed: int = 0, endpoint: str = "start") -> None:
        self.configure({"rates": rates, "seed": seed, "rates_endpoint": endpoint})

    def set_rate_limit(self, requests: int, window: float) -> None:
        self.configure({"rate_limit": {"requests": requests, "window": window}})

    def reset(self, *, faults_only: bool = False) -> None:
        """Forget every fault; unless ``faults_only``, also every livestream and record."""
        with self._lock:
            self._scripts = []
            self._latency = None
            self._rates = None
            self._rates_endpoint = "start"
            self._rng = random.Random(0)
            self._limit = None
            self._windows = {}
            if faults_only:
                return
            self._streams = {}
            self._active = {}
            self._created = {}
            self._records = []
            self._responses = Counter()
            self._in_flight = self._max_in_flight = 0

    # -- what was received -----------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._records)

    @property
    def created(self) -> dict[str, list[Created]]:
        with self._lock:
            return {meeting: list(items) for meeting, items in self._created.items()}

    @property
    def starts_received(self) -> int:
        with self._lock:
            return sum(1 for r in self._records if r.endpoint == "start")

    def stats(self) -> dict[str, Any]:
        """Counts as JSON (also ``GET /__fake__/stats``)."""
        with self._lock:
            return {
                "requests": len(self._records),
                "by_endpoint": dict(Counter(str(r.endpoint) for r in self._records)),
                "starts_received": sum(1 for r in self._records if r.endpoint == "start"),
                "created_total": sum(len(v) for v in self._created.values()),
                "created": {m: [asdict(c) for c in v] for m, v in self._created.items()},
                "active": dict(self._active),
                "responses": dict(self._responses),
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "faults_pending": sum(len(q) for _, _, q in self._scripts),
            }

    # -- used by the handler ---------------------------------------------------------------
    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self._records.append(rec)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _done(self, rec: RecordedRequest, response: int | str) -> None:
        with self._lock:
            rec.response = response
            self._responses[str(response)] += 1
            self._in_flight -= 1

    def _delay(self, endpoint: str | None) -> float:
        with self._lock:
            if self._latency is None or self._latency[2] not in ("*", endpoint):
                return 0.0
            return self._latency[0] + self._rng.uniform(0, self._latency[1])

    def _rate_limited(self, token: str) -> float | None:
        """Seconds left in the window when this token is over its limit, else None."""
        with self._lock:
            if self._limit is None:
                return None
            now = time.monotonic()
            window = self._windows.setdefault(token, [now, 0])
            if now - window[0] >= self._limit[1]:
                window[:] = [now, 0]
            window[1] += 1
            if window[1] <= self._limit[0]:
                return None
            return window[0] + self._limit[1] - now

    def _next_fault(self, endpoint: str, meeting_id: str | None) -> Fault | None:
        with self._lock:
            for ep, meeting, queue in self._scripts:
                if queue and ep in ("*", endpoint) and meeting in (None, meeting_id):
                    return queue.popleft()
            if self._rates is None or self._rates_endpoint not in ("*", endpoint):
                return None
            draw = self._rng.random()
            for kind, rate in self._rates:
                if draw < rate:
                    return _random_fault(kind, self._rng)
                draw -= rate
            return None

    def _create(self, meeting_id: str, name: str | None) -> _Stream | None:
        """The new livestream, or None when the meeting already has an active one."""
        with self._lock:
            if meeting_id in self._active:
                return None
            stream = _Stream(
                str(uuid.uuid4()), meeting_id, name, secrets.token_hex(32), time.time()
            )
            self._streams[stream.id] = stream
            self._active[meeting_id] = stream.id
            self._created.setdefault(meeting_id, []).append(Created(stream.id, stream.stream_key))
            return stream

    def _lookup(self, endpoint: str, key: str) -> _Stream | None:
        with self._lock:
            if endpoint == "get":
                return self._streams.get(key)
            stream = self._streams.get(self._active.get(key, ""))
            if stream is not None and endpoint == "stop":
                stream.stopped = time.time()
                del self._active[key]
            return stream


_SPEC_KEYS = {"script", "latency", "rates", "rates_endpoint", "seed", "rate_limit"}
_SPEC_KEYS |= {"hang_seconds", "live_after"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hanging handler must never keep the process alive
    request_queue_size = 1024  # listen backlog: 200 clients connecting at once must not stall
    fake: FakeRealtimeKit

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients cut connections on purpose in these tests; a traceback per cut is noise.
        log.debug("fake realtimekit: handler error from %s", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    timeout = 120  # an idle keep-alive connection gives its thread back eventually
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY the client's delayed ACK
        # adds ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.fake._lock:
            self.server.fake._conns.add(self.connection)

    def finish(self) -> None:
        with self.server.fake._lock:
            self.server.fake._conns.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake realtimekit: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._send(411, _v4(411, "Length Required"))
            return
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit() or int(length) > MAX_BODY:
            self.close_connection = True  # the rest of the body would be read as a request
            self._send(413, _v4(413, "Content-Length missing, malformed or too large"))
            return
        body = self.rfile.read(int(length))
        path = self.path.split("?", 1)[0]
        if path.startswith(CONTROL):
            self._control(path.removeprefix(CONTROL), body)
            return
        fake = self.server.fake
        endpoint, params = _route(self.command, path.removeprefix("/client/v4"))
        meeting = params[2] if endpoint in ("start", "active", "stop") else None
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}
        rec = RecordedRequest(
            self.command,
            path,
            endpoint,
            meeting,
            body.decode("utf-8", "replace"),
            headers,
            time.time(),
        )
        fake._record(rec)
        outcome: int | str = 500
        try:
            outcome = self._answer(fake, endpoint, params, body)
        finally:
            fake._done(rec, outcome)

    def _answer(
        self, fake: FakeRealtimeKit, endpoint: str | None, params: tuple[str, ...], body: bytes
    ) -> int | str:
        delay = fake._delay(endpoint)
        if delay and fake._stopping.wait(delay):
            return self._drop()
        token = self.headers.get("Authorization", "")
        if not secrets.compare_digest(token.encode(), f"Bearer {fake.token}".encode()):
            return self._send(401, _v4(10000, "Authentication error"))
        left = fake._rate_limited(token)
        if left is not None:
            msg = "Please wait and consider throttling your request speed"
            return self._send(429, _v4(1015, msg), retry_after=str(max(1, math.ceil(left))))
        if endpoint is None:
            return self._send(404, _v4(7000, "No route for that URI"))
        account, app, key = params
        if len(account) > 32 or len(app) > 32 or (endpoint != "get" and not _is_uuid(key)):
            msg = "Could not route to that resource, perhaps your object identifier is invalid?"
            return self._send(404, _v4(7003, msg))
        payload: dict[str, Any] = {}
        if endpoint == "start":
            problem, payload = _validate_start(body)
            if problem:
                return self._send(422, _rtk(422, problem))
        fault = fake._next_fault(endpoint, key if endpoint != "get" else None)
        if fault is not None:
            return self._fault(fake, fault, endpoint, key, payload)
        return self._normal(fake, endpoint, key, payload)

    def _normal(
        self, fake: FakeRealtimeKit, endpoint: str, key: str, payload: dict[str, Any]
    ) -> int:
        if endpoint == "start":
            stream = fake._create(key, payload.get("name"))
            if stream is None:
                return self._send(409, _rtk(409, "Meeting already has an active livestream"))
            doc = stream.as_json(fake.live_after)
            fields = ("id", "ingest_server", "playback_url", "status", "stream_key")
            return self._send(201, {"success": True, "data": {k: doc[k] for k in fields}})
        stream = fake._lookup(endpoint, key)
        if stream is None:
            what = "livestream" if endpoint == "get" else "active livestream for this meeting"
            return self._send(404, _rtk(404, f"No {what} found"))
        if endpoint == "stop":
            return self._send(
                200, {"success": True, "data": {"message": "Stopped live stream successfully"}}
            )
        if endpoint == "get":
            doc = stream.as_json(fake.live_after, nullable_name=False)
            return self._send(200, {"success": True, "data": {"livestream": doc}})
        return self._send(200, {"success": True, "data": stream.as_json(fake.live_after)})

    def _fault(
        self, fake: FakeRealtimeKit, fault: Fault, endpoint: str, key: str, payload: dict[str, Any]
    ) -> int | str:
        if fault.create and endpoint == "start":
            fake._create(key, payload.get("name"))
        if fault.action == "hang":
            # Hold the request past any sane client timeout, then give up without an answer.
            fake._stopping.wait(fake.hang_seconds)
            return self._drop("hang")
        if fault.action == "drop":
            return self._drop()
        body = fault.body if fault.body is not None else _rtk(fault.status, _reason(fault.status))
        return self._send(
            fault.status, body, retry_after=fault.retry_after, content_type=fault.content_type
        )

    def _drop(self, label: str = "drop") -> str:
        # No status line: the client sees the connection close after it sent everything.
        self.close_connection = True
        return label

    def _send(
        self,
        status: int,
        body: dict[str, Any] | bytes,
        *,
        retry_after: str | None = None,
        content_type: str = "application/json",
    ) -> int:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("cf-ray", f"{secrets.token_hex(8)}-FAKE")
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(data)
        return status

    def _control(self, action: str, body: bytes) -> None:
        fake = self.server.fake
        try:
            spec = json.loads(body) if body.strip() else {}
            if self.command == "POST" and action == "faults":
                fake.configure(spec)
            elif self.command == "POST" and action == "reset":
                fake.reset(faults_only=bool(spec.get("faults_only", False)))
            elif self.command == "GET" and action == "stats":
                self._send(200, fake.stats())
                return
            elif self.command == "GET" and action == "requests":
                data = json.dumps([asdict(r) for r in fake.requests]).encode()
                self._send(200, data)
                return
            else:
                self._send(
                    404, {"ok": False, "error": f"no control endpoint {self.command} {action}"}
                )
                return
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            self._send(400, {"ok": False, "error": str(exc)})
            return
        self._send(200, {"ok": True})


def run_fake_api(
    host: str = "127.0.0.1",
    port: int = 8787,
    token: str = "fake-token",  # noqa: S107 - the fake's own token, loopback only
    live_after: float | None = None,
    *,
    out: TextIO | None = None,
) -> None:
    """Serve the fake until interrupted; print one line, the base URL, once it accepts."""
    fake = FakeRealtimeKit(host, port, token, live_after)
    fake.bind()
    print(fake.base_url, file=out or sys.stdout, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        fake.serve_forever()


def _route(method: str, path: str) -> tuple[str | None, tuple[str, ...]]:
    for endpoint, verb, pattern in _ROUTES:
        match = pattern.fullmatch(path)
        if match and verb == method:
            return endpoint, match.groups()
    return None, ("", "", "")


def _validate_start(body: bytes) -> tuple[str | None, dict[str, Any]]:
    """(problem, payload): the contract's request schema, checked by hand (no jsonschema here)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return "request body must be JSON", {}
    if not isinstance(doc, dict):
        return "request body must be a JSON object", {}
    name = doc.get("name")
    if name is not None and not (isinstance(name, str) and NAME.fullmatch(name)):
        return "name must match ^[a-zA-Z0-9-_]*$", {}
    if "width" in doc or "height" in doc:
        return "width and height belong in video_config", {}
    video = doc.get("video_config", {})
    if not isinstance(video, dict):
        return "video_config must be an object", {}
    for dim in ("width", "height"):
        # type() rather than isinstance(): JSON true is a bool, and bool is an int subclass.
        if dim in video and not (type(video[dim]) is int and video[dim] > 0):
            return f"video_config.{dim} must be a positive integer", {}
    return None, doc


def _random_fault(kind: str, rng: random.Random) -> Fault:
    if kind == "5xx":
        return Fault(status=rng.choice([500, 502, 503, 504]))
    if kind == "429":
        return Fault(status=429, retry_after="1")
    return parse_fault(int(kind) if kind.isdigit() else kind)


def _parse_script(spec: Any) -> tuple[str, str | None, deque[Fault]]:
    if not isinstance(spec, dict) or not isinstance(spec.get("faults"), list):
        raise ValueError(f"a script entry needs a faults list: {spec!r}")
    meeting = spec.get("meeting_id")
    return (
        _endpoint(spec.get("endpoint", "start")),
        meeting,
        deque(map(parse_fault, spec["faults"])),
    )


def _parse_latency(spec: Any) -> tuple[float, float, str]:
    fixed, jitter = float(spec.get("fixed", 0.0)), float(spec.get("jitter", 0.0))
    if fixed < 0 or jitter < 0:
        raise ValueError("latency must not be negative")
    return fixed, jitter, _endpoint(spec.get("endpoint", "*"))


def _parse_rates(spec: Any) -> list[tuple[str, float]]:
    kinds = {"5xx", "409", "429", "html502", "hang", "drop"}
    if not isinstance(spec, dict) or set(spec) - kinds:
        raise ValueError(f"rates take only {sorted(kinds)}")
    rates = [(k, float(v)) for k, v in spec.items()]
    if any(r < 0 for _, r in rates) or sum(r for _, r in rates) > 1:
        raise ValueError("rates must be >= 0 and add up to at most 1")
    return rates


def _parse_limit(spec: Any) -> tuple[int, float]:
    requests, window = int(spec["requests"]), float(spec["window"])
    if requests < 1 or window <= 0:
        raise ValueError("rate_limit needs requests >= 1 and window > 0")
    return requests, window


def _endpoint(value: Any) -> str:
    if value != "*" and value not in ENDPOINTS:
        raise ValueError(f"endpoint must be one of {ENDPOINTS} or '*', got {value!r}")
    return str(value)


def _loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the fake binds only to a loopback address, not {host!r}")
    return host


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _v4(code: int, message: str) -> dict[str, Any]:
    return {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": None,
    }


def _rtk(code: int, message: str) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message}}


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
