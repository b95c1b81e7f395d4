"""Signed ``livestreaming.statusUpdate`` webhooks from the fake RealtimeKit, with faults.

One POST per status change of a livestream, to the one loopback URL configured:
- body, compact JSON: ``{"event": "livestreaming.statusUpdate", "meetingId", "streamId",
  "status", "streamKey", "ingestServer", "playbackUrl", "updatedAt"}``. ``streamKey`` is in
  clear, as the real payload carries it; ``updatedAt`` is the instant of the change (ISO-8601
  UTC with milliseconds), not the instant of sending.
- headers: ``content-type: application/json``; ``rtk-uuid``, fresh per event and the same on a
  duplicated delivery; ``rtk-webhook-id``, the fake's one webhook registration;
  ``rtk-signature``, base64 of an RSA PKCS#1 v1.5 SHA-256 signature over the raw body bytes,
  made with the fake's own key, whose public half it serves at ``/.well-known/webhooks.json``.

Status words: the REST enum is LIVE/IDLE/ERRORED/INVOKED, while RealtimeKit's webhook pages
list LIVE/OFFLINE/IDLE for this event. A stopped or ended stream is announced as OFFLINE (REST
reports it IDLE); INVOKED, LIVE and ERRORED are sent as REST spells them.

Delivery: a background thread sends, so no API handler ever waits on a receiver. A 2xx is
delivered; a 5xx or a connection error is tried again ``retries`` times, ``backoff * 2**n``
seconds apart; any other answer is final (RealtimeKit retries 5xx, never 4xx). Deliveries wait
in one queue ordered by due time, so a late or retried one never holds up the next.

Faults, per event, scripted or at random rates: ``drop`` (never sent), ``duplicate`` (sent
twice with the same ``rtk-uuid``), ``late`` (sent ``late_seconds`` after the change, after
later events: out of order), ``bad_signature`` (signed over other bytes).
"""

from __future__ import annotations

import base64
import heapq
import http.client
import ipaddress
import itertools
import json
import logging
import math
import random
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from worker.dev.fake_lifecycle import INGEST_SERVER, Livestream, iso

log = logging.getLogger(__name__)

EVENT = "livestreaming.statusUpdate"
FAULTS = ("drop", "duplicate", "late", "bad_signature")
WEBHOOK_STATUS = {"IDLE": "OFFLINE"}  # every other REST status is sent as it is
DEFAULT_LATE_SECONDS = 2.0


class Signer:
    """The fake's RSA key pair (2048 bits), made on first use and kept for its lifetime."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: rsa.RSAPrivateKey | None = None

    @property
    def ready(self) -> bool:
        return self._key is not None

    def _private(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._key is None:
                # ~50 ms of CPU: made on first use, since most fakes in the tests never sign.
                self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._key

    def sign(self, data: bytes) -> str:
        signature = self._private().sign(data, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode("ascii")

    def public_pem(self) -> str:
        public = self._private().public_key()
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode("ascii")


@dataclass(frozen=True)
class WebhookConfig:
    """Where and how hard to deliver."""

    url: str
    retries: int = 3
    backoff: float = 0.2
    timeout: float = 5.0


def parse_webhooks(spec: Any) -> WebhookConfig | None:
    """``{"url": "http://127.0.0.1:PORT/path", "retries": 3, "backoff": 0.2, "timeout": 5}``
    (only ``url`` required) or null (no webhooks). ValueError on anything else."""
    if spec is None:
        return None
    known = {"url", "retries", "backoff", "timeout"}
    if not isinstance(spec, dict) or "url" not in spec or set(spec) - known:
        raise ValueError(f"webhooks takes {sorted(known)}, url required; got {spec!r}")
    retries = spec.get("retries", 3)
    if type(retries) is not int or not 0 <= retries <= 10:
        raise ValueError(f"webhooks.retries must be an integer 0..10, got {retries!r}")
    backoff = _number(spec, "backoff", 0.2, upper=60)
    timeout = _number(spec, "timeout", 5.0, upper=60)
    if timeout <= 0:
        raise ValueError("webhooks.timeout must be > 0")
    return WebhookConfig(loopback_url(spec["url"]), retries, backoff, timeout)


def loopback_url(url: Any) -> str:
    """``url`` when it is plain HTTP to a loopback address (``localhost`` written as
    127.0.0.1), else ValueError: the fake must never send anything off the machine."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "http" or not loopback or parts.username or parts.password:
        raise ValueError(f"the fake sends webhooks only to http:// on loopback, not {url!r}")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(("http", netloc, parts.path or "/", parts.query, ""))


@dataclass(frozen=True)
class FaultRates:
    """The chance of each fault per event, drawn independently."""

    drop: float = 0.0
    duplicate: float = 0.0
    late: float = 0.0
    bad_signature: float = 0.0


def draw_faults(rates: FaultRates, draws: Sequence[float]) -> frozenset[str]:
    """The faults for one event, from four uniform draws in [0, 1), one per fault in FAULTS
    order. Always four draws, so one event's outcome never shifts the next one's."""
    return frozenset(f for f, d in zip(FAULTS, draws, strict=True) if d < getattr(rates, f))


@dataclass
class _Script:
    meeting_id: str | None
    status: str | None  # a webhook status word (OFFLINE, not IDLE)
    faults: deque[frozenset[str]]
    late_seconds: float | None


@dataclass(frozen=True)
class WebhookFaults:
    """A parsed ``webhook_faults`` spec; see ``parse_webhook_faults``."""

    rates: FaultRates | None = None
    late_seconds: float = DEFAULT_LATE_SECONDS
    seed: int | None = None
    scripts: tuple[_Script, ...] = ()


def parse_webhook_faults(spec: Any) -> WebhookFaults | None:
    """``{"drop": 0.1, "duplicate": 0.1, "late": 0.1, "bad_signature": 0.05,
    "late_seconds": 2, "seed": 1, "script": [{"meeting_id": "<uuid>" (optional),
    "status": "LIVE" (optional, a webhook word), "late_seconds": 1 (optional),
    "faults": ["drop", ["late", "duplicate"], "none", ...]}]}`` or null (no faults).
    ValueError on anything else."""
    if spec is None:
        return None
    known = {*FAULTS, "late_seconds", "seed", "script"}
    if not isinstance(spec, dict) or set(spec) - known:
        raise ValueError(f"webhook_faults takes {sorted(known)}, got {spec!r}")
    rates = None
    if any(f in spec for f in FAULTS):
        rates = FaultRates(**{f: _number(spec, f, 0.0, upper=1) for f in FAULTS})
    seed = spec.get("seed")
    if seed is not None and type(seed) is not int:
        raise ValueError(f"webhook_faults.seed must be an integer, got {seed!r}")
    script = spec.get("script", [])
    if not isinstance(script, list):
        raise ValueError("webhook_faults.script must be a list")
    return WebhookFaults(
        rates,
        _number(spec, "late_seconds", DEFAULT_LATE_SECONDS, upper=600),
        seed,
        tuple(map(_parse_script, script)),
    )


def _parse_script(spec: Any) -> _Script:
    known = {"meeting_id", "status", "late_seconds", "faults"}
    if not isinstance(spec, dict) or set(spec) - known or not isinstance(spec.get("faults"), list):
        raise ValueError(f"a webhook fault script needs a faults list: {spec!r}")
    late = _number(spec, "late_seconds", 0.0, upper=600) if "late_seconds" in spec else None
    return _Script(
        spec.get("meeting_id"), spec.get("status"), deque(map(_fault_set, spec["faults"])), late
    )


def _fault_set(item: Any) -> frozenset[str]:
    names = [item] if isinstance(item, str) else item
    if not isinstance(names, list) or not all(n in (*FAULTS, "none") for n in names):
        raise ValueError(f"a webhook fault is one of {[*FAULTS, 'none']} or a list of them")
    return frozenset(names) - {"none"}


def _number(spec: dict[str, Any], key: str, default: float, *, upper: float) -> float:
    value = spec.get(key, default)
    if type(value) not in (int, float) or not math.isfinite(value) or not 0 <= value <= upper:
        raise ValueError(f"{key} must be a number in 0..{upper}, got {value!r}")
    return float(value)


@dataclass
class Delivery:
    """One delivery of one event (a duplicate is a second Delivery with the same uuid).
    ``answered``: the last answer's HTTP status, "error" when the connection failed, or None
    when nothing was sent yet (pending, or dropped on purpose)."""

    uuid: str
    stream_id: str
    meeting_id: str
    status: str
    updated_at: str
    faults: list[str]
    copy: int = 0
    attempts: int = 0
    answered: int | str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "streamId": self.stream_id,
            "meetingId": self.meeting_id,
            "status": self.status,
            "updatedAt": self.updated_at,
            "faults": self.faults,
            "copy": self.copy,
            "attempts": self.attempts,
            "answered": self.answered,
        }


@dataclass(order=True)
class _Queued:
    due: float  # time.monotonic()
    seq: int
    delivery: Delivery = field(compare=False)
    body: bytes = field(compare=False)
    config: WebhookConfig = field(compare=False)
    bad_signature: bool = field(compare=False)
    generation: int = field(compare=False)


class WebhookSender:
    """Queues events and delivers them from its own thread (``start``/``stop``)."""

    # Set by reset(); every one guarded by _cond.
    _rates: FaultRates | None
    _late_seconds: float
    _rng: random.Random
    _scripts: list[_Script]
    _queue: list[_Queued]
    _deliveries: list[Delivery]
    _answers: Counter[str]
    _fault_counts: Counter[str]
    _events: int

    def __init__(self, config: WebhookConfig | None = None) -> None:
        self.webhook_id = str(uuid.uuid4())
        self.signer = Signer()
        self._cond = threading.Condition()
        self._config = config
        self._seq = itertools.count()
        self._generation = 0
        self._in_flight = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.reset()

    @property
    def config(self) -> WebhookConfig | None:
        with self._cond:
            return self._config

    def set_config(self, config: WebhookConfig | None) -> None:
        with self._cond:
            self._config = config
            self._cond.notify_all()  # the thread makes the key now, not on the first event

    def set_faults(self, faults: WebhookFaults | None) -> None:
        """Replace the rates (None clears rates and scripts); add the scripts."""
        with self._cond:
            if faults is None:
                self._rates, self._scripts = None, []
                return
            self._rates, self._late_seconds = faults.rates, faults.late_seconds
            if faults.seed is not None:
                self._rng = random.Random(faults.seed)
            self._scripts.extend(faults.scripts)

    def reset(self, *, faults_only: bool = False) -> None:
        """Forget every fault; unless ``faults_only``, also every delivery, queued ones too."""
        with self._cond:
            self._rates, self._late_seconds = None, DEFAULT_LATE_SECONDS
            self._rng = random.Random(0)
            self._scripts = []
            if faults_only:
                return
            self._generation += 1  # a delivery in flight now is not recorded or retried
            self._queue, self._deliveries = [], []
            self._answers, self._fault_counts = Counter(), Counter()
            self._events = 0
            self._cond.notify_all()

    # -- producing events ------------------------------------------------------------------
    def submit(self, stream: Livestream, status: str, at: float) -> None:
        """Announce that ``stream`` took REST status ``status`` at ``at`` (time.time()).
        Never blocks on the network; a no-op without a configured URL."""
        word = WEBHOOK_STATUS.get(status, status)
        body = json.dumps(
            {
                "event": EVENT,
                "meetingId": stream.meeting_id,
                "streamId": stream.id,
                "status": word,
                "streamKey": stream.stream_key,
                "ingestServer": INGEST_SERVER,
                "playbackUrl": stream.playback_url,
                "updatedAt": iso(at),
            },
            separators=(",", ":"),
        ).encode()
        with self._cond:
            config = self._config
            if config is None:
                return
            self._events += 1
            faults, late_seconds = self._faults_for(stream.meeting_id, word)
            self._fault_counts.update(faults)
            event_uuid = str(uuid.uuid4())
            copies = 2 if "duplicate" in faults else 1
            due = time.monotonic() + (late_seconds if "late" in faults else 0.0)
            for copy in range(copies):
                delivery = Delivery(
                    event_uuid, stream.id, stream.meeting_id, word, iso(at), sorted(faults), copy
                )
                self._deliveries.append(delivery)
                if "drop" in faults:
                    continue
                queued = _Queued(
                    due,
                    next(self._seq),
                    delivery,
                    body,
                    config,
                    "bad_signature" in faults,
                    self._generation,
                )
                heapq.heappush(self._queue, queued)
            self._cond.notify_all()

    def _faults_for(self, meeting_id: str, word: str) -> tuple[frozenset[str], float]:
        for script in self._scripts:
            if (
                script.faults
                and script.meeting_id in (None, meeting_id)
                and script.status in (None, word)
            ):
                late = script.late_seconds
                return script.faults.popleft(), self._late_seconds if late is None else late
        if self._rates is None:
            return frozenset(), self._late_seconds
        draws = [self._rng.random() for _ in FAULTS]
        return draw_faults(self._rates, draws), self._late_seconds

    # -- what happened ---------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {
                "webhook_id": self.webhook_id,
                "url": None if self._config is None else self._config.url,
                "events": self._events,
                "sent": sum(self._answers.values()),
                "by_answer": dict(self._answers),
                "faults": dict(self._fault_counts),
                "pending": len(self._queue) + self._in_flight,
                "deliveries": [d.as_json() for d in self._deliveries],
            }

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or being sent (late ones included); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._in_flight, timeout)

    # -- the sending thread ----------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="fake-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending; whatever is still queued is never sent."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)

    def _run(self) -> None:
        while True:
            with self._cond:
                item = self._next_due()
                if item is None:
                    return
                self._in_flight += 1
            answer: int | str = "error"
            try:
                answer = self._post(item)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._settle(item, answer)
                    self._cond.notify_all()

    def _next_due(self) -> _Queued | None:
        """The next delivery once it is due, or None when stopping. Called under _cond."""
        while not self._stopping:
            if self._config is not None and not self.signer.ready:
                # The key is made here, off the API's threads, before the first event needs it.
                self._cond.release()
                try:
                    self.signer.public_pem()
                finally:
                    self._cond.acquire()
                continue
            if self._queue:
                wait = self._queue[0].due - time.monotonic()
                if wait <= 0:
                    return heapq.heappop(self._queue)
                self._cond.wait(wait)
            else:
                self._cond.wait()
        return None

    def _settle(self, item: _Queued, answer: int | str) -> None:
        """Record an attempt's answer and queue the retry it calls for. Called under _cond."""
        if item.generation != self._generation:
            return  # reset() since: this run's records are gone
        delivery = item.delivery
        delivery.attempts += 1
        delivery.answered = answer
        self._answers[str(answer)] += 1
        retryable = answer == "error" or (isinstance(answer, int) and answer >= 500)
        if retryable and delivery.attempts <= item.config.retries:
            item.due = time.monotonic() + item.config.backoff * 2 ** (delivery.attempts - 1)
            item.seq = next(self._seq)
            heapq.heappush(self._queue, item)

    def _post(self, item: _Queued) -> int | str:
        parts = urlsplit(item.config.url)
        signed = b"not the body:" + item.body if item.bad_signature else item.body
        headers = {
            "content-type": "application/json",
            "rtk-uuid": item.delivery.uuid,
            "rtk-webhook-id": self.webhook_id,
            "rtk-signature": self.signer.sign(signed),
        }
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port or 80, timeout=item.config.timeout
        )
        try:
            conn.request("POST", path, body=item.body, headers=headers)
            answer = conn.getresponse()
            answer.read()
            return answer.status
        except (OSError, http.client.HTTPException) as exc:
            log.debug("fake webhooks: delivery %s failed: %r", item.delivery.uuid, exc)
            return "error"
        finally:
            conn.close()
