"""A fake RealtimeKit API on loopback, following tests/contracts/, with fault injection.

Used by the tests, ``livestreams fake-api`` and the demo: nothing ever calls the internet.
Stdlib only apart from ``cryptography`` (already the product's dependency) for the webhook
signatures, because it ships in the wheel and runs in the demo without dev dependencies.

Behaviour (where the contract is silent, the choice is noted):
- ``Authorization: Bearer <token>`` is required: else 401, v4 envelope, code 10000.
- account/app ids over 32 characters, or a meeting id that is not a UUID: 404, v4 envelope,
  code 7003 ("Could not route..."), as Cloudflare answers for bad identifiers.
- A start body must be a JSON object; ``name`` null or ``^[a-zA-Z0-9-_]*$``; ``video_config``
  an object of positive integers. Else 422 in RealtimeKit's envelope. Stricter than the
  contract on purpose: a top-level ``width``/``height`` is refused (422), so a wrongly nested
  body fails every test instead of being silently ignored.
- One active livestream per meeting: a start while one is active gets 409 (RealtimeKit
  envelope) and creates nothing. A new livestream is INVOKED, then follows its scripted
  lifecycle (``worker/dev/fake_lifecycle.py``: LIVE and/or ERRORED after so many seconds, set
  globally or per meeting). Stop, or an upstream end (``/__fake__/end``), makes it IDLE and
  frees the meeting; ``GET /livestreams/{id}`` still finds it. ``/__fake__/foreign`` starts
  someone else's livestream on a meeting, never counted as one of the product's starts.
- With a webhook URL (loopback only), every status change is POSTed, signed, from a
  background thread (``worker/dev/fake_webhooks.py``); the public key is served at
  ``GET /.well-known/webhooks.json``, as RealtimeKit serves its own.
- Rate limit (when set): N requests per window per token, then 429 with ``retry-after`` for
  the rest of the window, v4 envelope code 1015 (the contract wants codes >= 1000).

Order per request: record, latency, auth, rate limit, route and validation, then a scripted
fault, else a random fault, else the normal answer. Control endpoints under ``/__fake__/`` and
the public key are never recorded, delayed or faulted; the control JSON is documented on
``FakeRealtimeKit.configure`` and ``FakeRealtimeKit.end_livestream``/``start_foreign``.
"""

from __future__ import annotations

import contextlib
import heapq
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
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TextIO

# Fault, parse_fault and ENDPOINTS are re-exported: tests and tools import them from here.
from worker.dev.fake_faults import ENDPOINTS as ENDPOINTS
from worker.dev.fake_faults import Fault as Fault
from worker.dev.fake_faults import (
    parse_endpoint,
    parse_latency,
    parse_limit,
    parse_rates,
    parse_script,
    random_fault,
)
from worker.dev.fake_faults import parse_fault as parse_fault
from worker.dev.fake_lifecycle import IDLE, INVOKED, Lifecycle, Livestream, iso, parse_meetings
from worker.dev.fake_webhooks import WebhookSender, parse_webhook_faults, parse_webhooks

log = logging.getLogger(__name__)

CONTROL = "/__fake__/"
PUBLIC_KEY_PATH = "/.well-known/webhooks.json"
MAX_BODY = 1 << 20
NAME = re.compile(r"[a-zA-Z0-9_-]*")
_APP = r"/accounts/([^/]+)/realtime/kit/([^/]+)"
_ROUTES = [
    ("start", "POST", re.compile(_APP + r"/meetings/([^/]+)/livestreams")),
    ("active", "GET", re.compile(_APP + r"/meetings/([^/]+)/active-livestream")),
    ("stop", "POST", re.compile(_APP + r"/meetings/([^/]+)/active-livestream/stop")),
    ("get", "GET", re.compile(_APP + r"/livestreams/([^/]+)")),
]


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
    _streams: dict[str, Livestream]
    _active: dict[str, str]  # meeting id -> active livestream id
    _created: dict[str, list[Created]]  # the product's starts only, never foreign ones
    _due: list[tuple[float, int, str]]  # (next status change, seq, livestream id), a heap
    _meetings: dict[str, dict[str, Any]]  # meeting id -> its lifecycle overrides
    _stops: list[dict[str, Any]]
    _ended: list[dict[str, Any]]
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
        webhook_url: str | None = None,
    ) -> None:
        self.host = loopback_host(host)
        self.token = token
        self._port = port
        self._lock = threading.Lock()
        # Wakes the clock thread when a livestream's next status change comes sooner.
        self._clock = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._clock_thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._seq = 0
        self.lifecycle = Lifecycle().merged({"live_after": live_after})
        self.hang_seconds = hang_seconds
        self.webhooks = WebhookSender(
            None if webhook_url is None else parse_webhooks({"url": webhook_url})
        )
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

    @property
    def live_after(self) -> float | None:
        return self.lifecycle.live_after

    @property
    def public_key_url(self) -> str:
        return self.base_url.removesuffix("/client/v4") + PUBLIC_KEY_PATH

    def bind(self) -> None:
        if self._server is None:
            self._stopping.clear()
            cls = _Server6 if ":" in self.host else _Server
            self._server = cls((self.host, self._port), _Handler)
            self._server.fake = self
            # Status changes happen (and are announced) on time even when nobody asks.
            self._clock_thread = threading.Thread(
                target=self._tick, name="fake-realtimekit-clock", daemon=True
            )
            self._clock_thread.start()
            self.webhooks.start()

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
        with self._lock:
            self._clock.notify_all()
        if self._clock_thread is not None:
            self._clock_thread.join(5)
        self.webhooks.stop()
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

    # -- fault injection and lifecycle -----------------------------------------------------
    def configure(self, spec: dict[str, Any]) -> None:
        """Apply a spec (also ``POST /__fake__/faults`` or ``/__fake__/configure``). Every key
        is optional::

            {"script": [{"endpoint": "start", "meeting_id": "<uuid>" (optional),
                         "faults": [503, 409, {"status": 429, "retry_after": "7"},
                                    "html502", "hang", "drop", {"status": 500, "create": true}]}],
             "latency": {"fixed": 0.2, "jitter": 0.1, "endpoint": "start"} | null,
             "rates": {"5xx": 0.1, "409": 0.0, "429": 0.05, "html502": 0.0,
                       "hang": 0.02, "drop": 0.01} | null,
             "rates_endpoint": "start", "seed": 42,
             "rate_limit": {"requests": 1200, "window": 300} | null,
             "hang_seconds": 30,
             "live_after": 5 | null,
             "lifecycle": {"live_after": 2.0 | null, "errored_after": 3.0 | null},
             "meetings": {"<meeting uuid>": {"live_after": null, "errored_after": 1.5} | null},
             "webhooks": {"url": "http://127.0.0.1:PORT/v1/webhooks/realtimekit",
                          "retries": 3, "backoff": 0.2, "timeout": 5} | null,
             "webhook_faults": {"drop": 0.1, "duplicate": 0.1, "late": 0.1, "late_seconds": 2,
                                "bad_signature": 0.05, "seed": 1,
                                "script": [{"meeting_id": "<uuid>", "status": "LIVE",
                                            "faults": ["drop", ["late", "duplicate"], "none"]}]}
                               | null}

        ``endpoint`` is one of start, active, stop, get, or "*". Scripted faults are used one
        per matching request, in order.

        Lifecycle: seconds after creation until a new livestream turns LIVE / ERRORED (null:
        never; ``live_after`` alone is the same as ``lifecycle.live_after``; the default is
        INVOKED for ever). ``lifecycle`` sets the keys it names, for every meeting;
        ``meetings`` sets them for one meeting, over the global ones (null removes the
        meeting's entry). A livestream keeps the plan it was created with.

        Webhooks: ``url`` must be http:// on a loopback address; 5xx and connection errors
        are retried ``retries`` times, ``backoff * 2**n`` seconds apart. ``webhook_faults``
        replaces the rates (each drawn per event; ``seed`` restarts their sequence) and adds
        its scripts (one entry per matching event, in order; ``status`` is the webhook's word,
        OFFLINE for a stop); null clears both. See ``worker/dev/fake_webhooks.py``.

        Raises ValueError and changes nothing on a bad spec.
        """
        if not isinstance(spec, dict) or set(spec) - _SPEC_KEYS:
            raise ValueError(f"unknown keys: {sorted(set(spec) - _SPEC_KEYS)}")
        scripts = [parse_script(s) for s in spec.get("script", [])]
        latency = parse_latency(spec["latency"]) if spec.get("latency") else None
        rates = parse_rates(spec["rates"]) if spec.get("rates") else None
        endpoint = parse_endpoint(spec.get("rates_endpoint", "start"))
        limit = parse_limit(spec["rate_limit"]) if spec.get("rate_limit") else None
        hang = float(spec.get("hang_seconds", self.hang_seconds))
        meetings = parse_meetings(spec.get("meetings", {}))
        webhooks = parse_webhooks(spec["webhooks"]) if "webhooks" in spec else None
        webhook_faults = parse_webhook_faults(spec.get("webhook_faults"))
        with self._lock:
            lifecycle = self.lifecycle.merged(spec.get("lifecycle", {}))
            if "live_after" in spec:
                lifecycle = lifecycle.merged({"live_after": spec["live_after"]})
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
            self.hang_seconds = hang
            self.lifecycle = lifecycle
            for meeting, override in meetings.items():
                if override is None:
                    self._meetings.pop(meeting, None)
                else:
                    self._meetings[meeting] = override
        if "webhooks" in spec:
            self.webhooks.set_config(webhooks)
        if "webhook_faults" in spec:
            self.webhooks.set_faults(webhook_faults)

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
        """Forget every fault, webhook faults included; unless ``faults_only``, also every
        livestream, record, per-meeting lifecycle and webhook delivery. The global lifecycle
        and the webhook URL stay, like the token: they are how the fake was set up."""
        self.webhooks.reset(faults_only=faults_only)
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
            self._due = []
            self._meetings = {}
            self._stops = []
            self._ended = []
            self._records = []
            self._responses = Counter()
            self._in_flight = self._max_in_flight = 0

    # -- acting as the host or as someone else -----------------------------------------------
    def end_livestream(
        self, *, livestream_id: str | None = None, meeting_id: str | None = None
    ) -> dict[str, Any] | None:
        """End an active livestream upstream, as if its host ended it (also ``POST
        /__fake__/end`` with ``{"livestream_id": ...}`` or ``{"meeting_id": ...}``): IDLE,
        announced as OFFLINE, the meeting freed. The livestream as GET shows it, or None when
        no such livestream is active."""
        if (livestream_id is None) == (meeting_id is None):
            raise ValueError("name exactly one of livestream_id and meeting_id")
        with self._lock:
            now = time.time()
            self._advance(now)
            if meeting_id is not None:
                livestream_id = self._active.get(meeting_id)
            stream = self._streams.get(livestream_id or "")
            if stream is None or not stream.active:
                return None
            self._end(stream, now, "upstream")
            self._ended.append(_event(stream, now))
            return stream.as_json()

    def start_foreign(self, meeting_id: str, name: str | None = None) -> dict[str, Any] | None:
        """Start someone else's livestream on ``meeting_id`` (also ``POST /__fake__/foreign``
        with ``{"meeting_id": ..., "name": ...}``): active, following the lifecycle, but never
        counted among the product's starts. The livestream, or None when the meeting already
        has an active one."""
        if not _is_uuid(meeting_id):
            raise ValueError(f"meeting_id must be a UUID, got {meeting_id!r}")
        if name is not None and not (isinstance(name, str) and NAME.fullmatch(name)):
            raise ValueError("name must match ^[a-zA-Z0-9-_]*$")  # as a start's name
        return self._create(meeting_id, name, foreign=True)

    def wait_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait until every webhook is delivered or given up (late ones too); False on timeout."""
        return self.webhooks.wait_idle(timeout)

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
        """Counts as JSON (also ``GET /__fake__/stats``). ``stops``: each livestream a stop call
        ended, ``{"meeting_id", "livestream_id", "at", "foreign"}``; ``stop_calls``: stop
        requests received per meeting, whatever their answer; ``ended_upstream``: the same
        for ``end_livestream``; ``webhooks``: see ``WebhookSender.stats``."""
        with self._lock:
            self._advance(time.time())
            doc = {
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
                "statuses": {i: st.status for i, st in self._streams.items()},
                "foreign": [i for i, st in self._streams.items() if st.foreign],
                "stops": list(self._stops),
                "stops_by_livestream": dict(Counter(e["livestream_id"] for e in self._stops)),
                "stop_calls": dict(
                    Counter(r.meeting_id for r in self._records if r.endpoint == "stop")
                ),
                "ended_upstream": list(self._ended),
            }
        # After the advance above, so every change it announced is counted.
        return doc | {"webhooks": self.webhooks.stats()}

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
                    return random_fault(kind, self._rng)
                draw -= rate
            return None

    def _create(
        self, meeting_id: str, name: str | None, *, foreign: bool = False
    ) -> dict[str, Any] | None:
        """The new livestream as the API shows it, or None when the meeting has an active one."""
        with self._lock:
            now = time.time()
            self._advance(now)
            if meeting_id in self._active:
                return None
            override = self._meetings.get(meeting_id)
            plan = self.lifecycle if override is None else self.lifecycle.merged(override)
            stream = Livestream(
                str(uuid.uuid4()),
                meeting_id,
                name,
                secrets.token_hex(32),
                now,
                plan.steps(),
                foreign,
            )
            self._streams[stream.id] = stream
            self._active[meeting_id] = stream.id
            if not foreign:
                self._created.setdefault(meeting_id, []).append(
                    Created(stream.id, stream.stream_key)
                )
            self.webhooks.submit(stream, INVOKED, now)
            self._schedule(stream)
            return stream.as_json()

    def _lookup(self, endpoint: str, key: str) -> dict[str, Any] | None:
        """What ``get``, ``active`` or ``stop`` finds for ``key``, as the API shows it; a stop
        ends the meeting's active livestream."""
        with self._lock:
            now = time.time()
            self._advance(now)
            if endpoint == "get":
                found = self._streams.get(key)
                return None if found is None else found.as_json(nullable_name=False)
            stream = self._streams.get(self._active.get(key, ""))
            if stream is None:
                return None
            if endpoint == "stop":
                self._end(stream, now, "stop")
                self._stops.append(_event(stream, now) | {"foreign": stream.foreign})
            return stream.as_json()

    # -- the lifecycle clock (every one called under _lock) ----------------------------------
    def _end(self, stream: Livestream, now: float, by: str) -> None:
        stream.end(now, by)
        del self._active[stream.meeting_id]
        self.webhooks.submit(stream, IDLE, now)

    def _schedule(self, stream: Livestream) -> None:
        due = stream.next_due()
        if due is None:
            return
        self._seq += 1
        heapq.heappush(self._due, (due, self._seq, stream.id))
        if self._due[0][2] == stream.id:
            self._clock.notify()  # sooner than what the clock thread waits for

    def _advance(self, now: float) -> None:
        """Apply every scripted status change due by ``now``, in order, announcing each."""
        while self._due and self._due[0][0] <= now:
            _, _, stream_id = heapq.heappop(self._due)
            stream = self._streams.get(stream_id)
            if stream is None:
                continue  # reset() since
            for status, at in stream.advance(now):
                self.webhooks.submit(stream, status, at)
            self._schedule(stream)

    def _tick(self) -> None:
        with self._lock:
            while not self._stopping.is_set():
                self._advance(time.time())
                wait = self._due[0][0] - time.time() if self._due else None
                self._clock.wait(None if wait is None else max(wait, 0.0))


_SPEC_KEYS = {"script", "latency", "rates", "rates_endpoint", "seed", "rate_limit"}
_SPEC_KEYS |= {"hang_seconds", "live_after", "lifecycle", "meetings", "webhooks", "webhook_faults"}


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
    _rec: RecordedRequest | None = None  # the request under way, until its answer is recorded

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
        if path == PUBLIC_KEY_PATH and self.command == "GET":
            # RealtimeKit's own shape for its webhook key; public, so no token needed.
            key = self.server.fake.webhooks.signer.public_pem()
            self._send(200, {"success": True, "data": {"publicKey": key}, "message": ""})
            return
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
        self._rec = rec
        outcome: int | str = 500
        try:
            outcome = self._answer(fake, endpoint, params, body)
        finally:
            if self._rec is not None:  # no answer sent: a hang, a drop or a crash
                self._rec = None
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
            doc = fake._create(key, payload.get("name"))
            if doc is None:
                return self._send(409, _rtk(409, "Meeting already has an active livestream"))
            fields = ("id", "ingest_server", "playback_url", "status", "stream_key")
            return self._send(201, {"success": True, "data": {k: doc[k] for k in fields}})
        found = fake._lookup(endpoint, key)
        if found is None:
            what = "livestream" if endpoint == "get" else "active livestream for this meeting"
            return self._send(404, _rtk(404, f"No {what} found"))
        if endpoint == "stop":
            return self._send(
                200, {"success": True, "data": {"message": "Stopped live stream successfully"}}
            )
        if endpoint == "get":
            return self._send(200, {"success": True, "data": {"livestream": found}})
        return self._send(200, {"success": True, "data": found})

    def _fault(
        self, fake: FakeRealtimeKit, fault: Fault, endpoint: str, key: str, payload: dict[str, Any]
    ) -> int | str:
        if fault.create and endpoint == "start":
            fake._create(key, payload.get("name"))
        elif fault.create and endpoint == "stop":
            fake._lookup("stop", key)  # the stop happened; only its answer is lost or wrong
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
        if self._rec is not None:
            # Recorded before the client can read the answer, so a test that asks the fake
            # right after its call finds the status there.
            self.server.fake._done(self._rec, status)
            self._rec = None
        self.end_headers()
        self.wfile.write(data)
        return status

    def _control(self, action: str, body: bytes) -> None:
        fake = self.server.fake
        try:
            spec = json.loads(body) if body.strip() else {}
            if self.command == "POST" and action in ("faults", "configure"):
                fake.configure(spec)
            elif self.command == "POST" and action == "end":
                _only(spec, {"livestream_id", "meeting_id"})
                ended = fake.end_livestream(**spec)
                if ended is None:
                    self._send(404, {"ok": False, "error": f"no active livestream for {spec}"})
                else:
                    self._send(200, {"ok": True, "livestream": ended})
                return
            elif self.command == "POST" and action == "foreign":
                _only(spec, {"meeting_id", "name"})
                started = fake.start_foreign(str(spec["meeting_id"]), spec.get("name"))
                if started is None:
                    error = "the meeting already has an active livestream"
                    self._send(409, {"ok": False, "error": error})
                else:
                    self._send(200, {"ok": True, "livestream": started})
                return
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
    webhook_url: str | None = None,
    out: TextIO | None = None,
) -> None:
    """Serve the fake until interrupted; print one line, the base URL, once it accepts."""
    fake = FakeRealtimeKit(host, port, token, live_after, webhook_url=webhook_url)
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


def _only(spec: Any, keys: set[str]) -> None:
    if not isinstance(spec, dict) or set(spec) - keys:
        raise ValueError(f"this control endpoint takes {sorted(keys)}, got {spec!r}")


def _event(stream: Livestream, at: float) -> dict[str, Any]:
    return {"meeting_id": stream.meeting_id, "livestream_id": stream.id, "at": iso(at)}


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


def loopback_host(host: str) -> str:
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
