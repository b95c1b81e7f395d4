"""The fake RealtimeKit's injected faults: what a scripted or random fault answers, parsed.

A fault replaces the answer to one request (``Fault``); ``parse_fault`` reads the JSON forms a
test writes, and the other parsers read the rest of a fault spec (scripts, latency, rates,
rate limit). Pure: ``FakeRealtimeKit`` keeps the state and applies them.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Any

ENDPOINTS = ("start", "active", "stop", "get")
HTML_502 = (
    b"<!DOCTYPE html>\n<html><head><title>api.cloudflare.com | 502: Bad gateway</title></head>"
    b"<body><h1>Bad gateway</h1><p>The web server reported a bad gateway error.</p>"
    + b"<!-- padding -->" * 200
    + b"</body></html>\n"
)


@dataclass(frozen=True)
class Fault:
    """One injected answer. ``action``: respond (status/body), hang, or drop the connection.

    ``create``: the call takes effect first (the ambiguous cases): a start creates the
    livestream, a stop stops it, and only then comes the fault.
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
    {"action": "hang"|"drop", "create": bool}. "hang"/"drop" take effect first (a start creates,
    a stop stops); "hang_before"/"drop_before" never reach the livestream."""
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


def random_fault(kind: str, rng: random.Random) -> Fault:
    if kind == "5xx":
        return Fault(status=rng.choice([500, 502, 503, 504]))
    if kind == "429":
        return Fault(status=429, retry_after="1")
    return parse_fault(int(kind) if kind.isdigit() else kind)


def parse_script(spec: Any) -> tuple[str, str | None, deque[Fault]]:
    if not isinstance(spec, dict) or not isinstance(spec.get("faults"), list):
        raise ValueError(f"a script entry needs a faults list: {spec!r}")
    meeting = spec.get("meeting_id")
    return (
        parse_endpoint(spec.get("endpoint", "start")),
        meeting,
        deque(map(parse_fault, spec["faults"])),
    )


def parse_latency(spec: Any) -> tuple[float, float, str]:
    fixed, jitter = float(spec.get("fixed", 0.0)), float(spec.get("jitter", 0.0))
    if fixed < 0 or jitter < 0:
        raise ValueError("latency must not be negative")
    return fixed, jitter, parse_endpoint(spec.get("endpoint", "*"))


def parse_rates(spec: Any) -> list[tuple[str, float]]:
    kinds = {"5xx", "409", "429", "html502", "hang", "drop"}
    if not isinstance(spec, dict) or set(spec) - kinds:
        raise ValueError(f"rates take only {sorted(kinds)}")
    rates = [(k, float(v)) for k, v in spec.items()]
    if any(r < 0 for _, r in rates) or sum(r for _, r in rates) > 1:
        raise ValueError("rates must be >= 0 and add up to at most 1")
    return rates


def parse_limit(spec: Any) -> tuple[int, float]:
    requests, window = int(spec["requests"]), float(spec["window"])
    if requests < 1 or window <= 0:
        raise ValueError("rate_limit needs requests >= 1 and window > 0")
    return requests, window


def parse_endpoint(value: Any) -> str:
    if value != "*" and value not in ENDPOINTS:
        raise ValueError(f"endpoint must be one of {ENDPOINTS} or '*', got {value!r}")
    return str(value)
