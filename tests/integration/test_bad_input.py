"""Every text field of every HTTP route and ops form, sent a NUL, a control character, an
overlong value and a wrong type: a 4xx (or the form's error page), never a 5xx, and nothing
stored changes. On SQLite and PostgreSQL (which refuses NUL in text: that was a 503)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select

from models import Base, WebhookDelivery
from models.db import get_sessionmaker
from tests.http_api import AT, MEETING
from tests.ops_page import OpsPage, csrf_of
from worker.bookings import booking as bookings
from worker.crypto import cipher_for
from worker.notify import endpoints

NUL, CONTROL, LONG = "x\x00y", "x\x1by", "x" * 3000
TEXT = {"NUL": NUL, "control": CONTROL, "overlong": LONG}
# Free text takes any text: only its NUL, control character and length can be wrong.
FREE_TEXT = {"ref", "q", "reason", "api_key", "next", "csrf"}
WRONG = True  # a boolean where text belongs (a number is a duration in seconds)


def stored(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, but when an API key was last used (a granted read notes it)."""
    with get_sessionmaker(url)() as session:
        out = {}
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if c.name != "last_used_at"]
            rows = session.execute(select(*columns)).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
        return out


@pytest.fixture
def world(settings, book):
    """A booking, a webhook endpoint with one delivery, and a signed-in ops page whose key
    holds every scope."""
    stream = book(external_ref="known")
    with get_sessionmaker(settings.database_url).begin() as s:
        made = endpoints.add(
            s, settings, cipher_for(settings, create=True), url="https://hooks.example.com/in",
            event_types=["*"], resolver=lambda h, p: ["93.184.216.34"],
        )  # fmt: skip
        bookings.cancel(s, bookings.find(s, stream.id))  # an event: one delivery
    with get_sessionmaker(settings.database_url)() as s:
        delivery = s.scalars(select(WebhookDelivery.id)).one()
    ops = OpsPage(settings)
    key = ops.signed_in("ops", "stream-keys:read", "webhooks:manage")
    headers = {"Authorization": f"Bearer {key}"}
    ops.client.get("/v1/bookings", headers=headers)  # the key's use is noted before the dump
    return ops, headers, str(stream.id), str(made.endpoint.id), str(delivery)


# (method, path, JSON body or None, text fields of the body)
def json_routes(stream: str, endpoint: str) -> list[tuple[str, str, dict[str, Any], list[str]]]:
    booking = {"meeting_id": MEETING, "at": AT}
    booking_fields = [
        "meeting_id", "at", "tz", "account_id", "app_id", "name", "ref", "ends_at", "duration",
    ]  # fmt: skip
    return [
        ("POST", "/v1/bookings", booking, booking_fields),
        ("POST", f"/v1/bookings/{stream}/reschedule", {"at": AT},
         ["at", "tz", "ends_at", "duration"]),
        ("POST", f"/v1/bookings/{stream}/retry", {}, ["at"]),
        ("POST", "/v1/webhook-endpoints", {"url": "https://hooks.example.com/in"},
         ["url", "event_types"]),
        ("POST", f"/v1/webhook-endpoints/{endpoint}/disable", {}, ["reason"]),
    ]  # fmt: skip


def query_routes() -> list[tuple[str, list[str]]]:
    return [
        (
            "/v1/bookings",
            ["state", "problem", "from", "to", "meeting_id", "ref", "cursor", "limit"],
        ),
        ("/v1/webhook-endpoints/{endpoint}/deliveries", ["limit"]),
        ("/ops/bookings", ["state", "problem", "from", "to", "meeting_id", "q", "cursor"]),
        ("/ops/bulk/cancel", ["state", "problem", "from", "to", "meeting_id", "q"]),
        ("/ops/webhooks/{endpoint}", ["cursor"]),
        ("/ops/sign-in", ["next"]),
    ]


def path_routes() -> list[tuple[str, str]]:
    """Paths with ``{}`` where a caller's id goes."""
    return [
        ("GET", "/v1/bookings/{}"),
        ("POST", "/v1/bookings/{}/cancel"),
        ("POST", "/v1/bookings/{}/stop"),
        ("GET", "/v1/bookings/{}/stream-key"),
        ("GET", "/v1/webhook-endpoints/{}"),
        ("POST", "/v1/webhook-endpoints/{}/enable"),
        ("POST", "/v1/webhook-endpoints/{}/rotate-secret"),
        ("GET", "/v1/webhook-endpoints/{}/deliveries"),
        ("POST", "/v1/webhook-endpoints/{endpoint}/deliveries/{}/replay"),
        ("GET", "/ops/bookings/{}"),
        ("GET", "/ops/bookings/{}/cancel"),
        ("GET", "/ops/webhooks/{}"),
    ]


# (path, form fields besides csrf, the fields to spoil)
def form_routes(stream: str, endpoint: str, delivery: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (f"/ops/bookings/{stream}/reschedule", {"at": "2031-02-01 10:00", "tz": "UTC"}),
        (f"/ops/bookings/{stream}/retry", {"at": "2031-02-01T10:00:00Z"}),
        (f"/ops/bookings/{stream}/cancel", {}),
        (f"/ops/bookings/{stream}/reveal", {}),
        ("/ops/bulk/cancel", {"state": "scheduled", "from": "", "to": "", "meeting_id": "",
                              "q": "", "problem": ""}),
        ("/ops/bulk/retry", {"state": "failed", "q": ""}),
        (f"/ops/webhooks/{endpoint}/disable", {"reason": "moving"}),
        (f"/ops/webhooks/{endpoint}/enable", {}),
        (f"/ops/webhooks/{endpoint}/deliveries/{delivery}/replay", {}),
        ("/ops/sign-out", {}),
    ]  # fmt: skip


def bad_text(field: str) -> list[tuple[str, str]]:
    """What to send a query or form field: a query string and a form hold text only, so the
    wrong type is text that is no number, instant, state or cursor."""
    return [*TEXT.items(), *([] if field in FREE_TEXT else [("wrong type", "[]")])]


def test_bad_text_anywhere_is_a_4xx_and_changes_nothing(world, settings) -> None:
    ops, headers, stream, endpoint, delivery = world
    client = ops.client
    before = stored(settings.database_url)
    seen: list[str] = []

    def expect(what: str, answer: Any, *, page_ok: bool = False) -> None:
        # page_ok: a page that shows the filter's error on a 200 (an overlong search finds
        # nothing) is what a form answers; never a 5xx.
        code = answer.status_code
        if code >= 500 or (code < 400 and not (page_ok and code == 200)):
            seen.append(f"{what}: {code} {answer.text[:200]!r}")

    for method, path, body, fields in json_routes(stream, endpoint):
        for field in fields:
            for label, value in [*TEXT.items(), ("wrong type", WRONG)]:
                sent = {**body, field: [value] if field == "event_types" else value}
                answer = client.request(method, path, json=sent, headers=headers)
                expect(f"{method} {path} {field}={label}", answer)
    for path, fields in query_routes():
        path = path.format(endpoint=endpoint)
        for field in fields:
            for label, value in bad_text(field):
                answer = client.get(path, params={field: value}, headers=headers)
                page = path.startswith("/ops") and label in ("overlong", "wrong type")
                expect(f"GET {path}?{field}={label}", answer, page_ok=page)
    for method, path in path_routes():
        for label, value in [*TEXT.items(), ("wrong type", "12345")]:
            where = path.format(quote(value, safe=""), endpoint=endpoint)
            answer = client.request(method, where, headers=headers, data=None)
            expect(f"{method} {path} id={label}", answer)
    for path, form in form_routes(stream, endpoint, delivery):
        for field in [*form, "csrf"]:
            for label, value in bad_text(field):
                sent = {"csrf": ops.csrf, **form, field: value}
                answer = client.post(path, data=sent)
                page = field in ("q", "meeting_id") and label in ("overlong", "wrong type")
                expect(f"POST {path} {field}={label}", answer, page_ok=page)
    for field in ("api_key", "next", "csrf"):
        for label, value in TEXT.items():
            form = client.get("/ops/sign-in").text
            sent = {"api_key": "lsk_x", "csrf": csrf_of(form), "next": "/ops", field: value}
            expect(f"POST /ops/sign-in {field}={label}", client.post("/ops/sign-in", data=sent))
    assert seen == [], "\n".join(seen)
    assert stored(settings.database_url) == before
