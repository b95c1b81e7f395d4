"""Every route of the HTTP API and the ops page with every scope: what each scope may see and
do is what the scope table of docs/http-api.md says, webhook endpoints included (a key
manages the endpoints it registered; ``ops`` every one)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from models import WebhookDelivery
from models.db import get_sessionmaker
from tests.http_api import AT, MEETING
from tests.ops_page import OpsPage
from worker.bookings import booking as bookings
from worker.crypto import cipher_for
from worker.http import apikeys
from worker.notify import endpoints
from worker.series import flow

SCOPE_SETS = [
    (),  # no key at all
    ("bookings:read",),
    ("bookings:write",),
    ("stream-keys:read",),
    ("webhooks:manage",),
    ("webhooks:manage", "bookings:read"),
    ("ops",),
    ("ops", "stream-keys:read"),
]
Rule = Callable[[frozenset[str]], bool]


def needs(*scopes: str) -> Rule:
    return lambda granted: set(scopes) <= granted


ANYONE: Rule = lambda granted: True  # noqa: E731


def routes(
    stream: str, own: str, foreign: str, deliveries: dict[str, str], series: str
) -> list[tuple]:
    """(method, path, JSON body, who may: a rule on the key's granted scopes)."""
    weekly = {"ref": "matrix", "meeting_id": MEETING, "rule": "FREQ=WEEKLY;BYDAY=MO",
              "at": "19:00", "tz": "Europe/Berlin", "duration": "1h"}  # fmt: skip
    out: list[tuple] = [
        ("POST", "/v1/series", weekly, needs("bookings:write")),
        ("GET", "/v1/series", None, needs("bookings:read")),
        ("GET", f"/v1/series/{series}", None, needs("bookings:read")),
        ("POST", f"/v1/series/{series}/edit", {"at": "20:00"}, needs("bookings:write")),
        ("POST", f"/v1/series/{series}/cancel", None, needs("bookings:write")),
        ("GET", "/v1/capacity", None, needs("bookings:read")),
        ("GET", "/v1/status", None, needs("ops")),
        ("POST", "/v1/bookings", {"meeting_id": MEETING, "at": AT}, needs("bookings:write")),
        ("GET", "/v1/bookings", None, needs("bookings:read")),
        ("GET", f"/v1/bookings/{stream}", None, needs("bookings:read")),
        ("POST", f"/v1/bookings/{stream}/reschedule", {"at": AT}, needs("bookings:write")),
        ("POST", f"/v1/bookings/{stream}/retry", None, needs("bookings:write")),
        ("POST", f"/v1/bookings/{stream}/stop", None, needs("bookings:write")),
        ("POST", f"/v1/bookings/{stream}/cancel", None, needs("bookings:write")),
        ("GET", f"/v1/bookings/{stream}/stream-key", None, needs("stream-keys:read")),
        ("POST", "/v1/webhook-endpoints", {"url": "https://hooks.example.com/x"},
         needs("webhooks:manage", "bookings:read")),
        ("GET", "/v1/webhook-endpoints", None, needs("webhooks:manage")),
    ]  # fmt: skip
    for endpoint, rule in ((own, needs("webhooks:manage")), (foreign, needs("ops"))):
        base = f"/v1/webhook-endpoints/{endpoint}"
        out += [
            ("GET", base, None, rule),
            ("GET", f"{base}/deliveries", None, rule),
            ("POST", f"{base}/deliveries/{deliveries[endpoint]}/replay", None, rule),
            ("POST", f"{base}/disable", {"reason": "x"}, rule),
            ("POST", f"{base}/enable", None, rule),
            ("POST", f"{base}/rotate-secret", None, rule),
        ]
    return out


@pytest.mark.parametrize("scopes", SCOPE_SETS, ids=lambda s: "+".join(s) or "no-key")
def test_every_route_with_every_scope(settings, book, scopes) -> None:
    ops = OpsPage(settings, prefix="matrix")
    factory = get_sessionmaker(settings.database_url)
    key = ops.key(*scopes) if scopes else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with factory.begin() as s:
        cipher = cipher_for(settings, create=True)
        other = apikeys.create(s, name="platform-b", scopes=["webhooks:manage", "bookings:read"])
        mine = apikeys.authenticate(s, key).id if key else None

        def add(owner):
            return endpoints.add(
                s, settings, cipher, url="https://hooks.example.com/in", event_types=["*"],
                resolver=lambda h, p: ["93.184.216.34"], owner=owner,
            ).endpoint.id  # fmt: skip

        own, foreign = str(add(mine)), str(add(other[0].id))
    stream = book()
    with factory.begin() as s:  # an event, so each endpoint has a delivery to replay
        bookings.cancel(s, bookings.find(s, stream.id))
    stream = book()
    with factory.begin() as s:
        series = flow.add(s, settings, ref="weekly", meeting_id=MEETING, rule="FREQ=DAILY",
                          at="12:00", tz="UTC", duration="1h").series.id  # fmt: skip
    with factory() as s:
        rows = s.execute(select(WebhookDelivery.endpoint_id, WebhookDelivery.id)).all()
        deliveries = {str(e): str(d) for e, d in rows}
    granted = set()
    for name in scopes:
        granted |= apikeys.IMPLIED.get(name, {name})
    wrong: list[str] = []
    for method, path, body, rule in routes(str(stream.id), own, foreign, deliveries, str(series)):
        answer = ops.client.request(method, path, json=body, headers=headers)
        allowed = bool(key) and rule(frozenset(granted))
        if not key:
            ok = answer.status_code == 401
        elif allowed:  # whatever the booking's state says (409, a 404 for no stream key yet)
            hidden = answer.status_code == 404 and path.startswith("/v1/webhook-endpoints")
            unhealthy = path == "/v1/status"  # 503: no dispatcher runs in this test
            ok = answer.status_code not in (401, 403) and not hidden
            ok = ok and (answer.status_code < 500 or unhealthy)
        elif path.startswith("/v1/webhook-endpoints/") and "webhooks:manage" in granted:
            ok = answer.status_code == 404  # another key's endpoint: not told it exists
        else:
            ok = answer.status_code == 403
        if not ok:
            wrong.append(f"{method} {path}: {answer.status_code} (allowed: {allowed})")
    for path in ("/healthz", "/metrics"):  # no key needed, none looked at
        answer = ops.client.get(path, headers=headers)
        if answer.status_code != 200:
            wrong.append(f"GET {path}: {answer.status_code}")
    signed = ops.client.post("/v1/webhooks/realtimekit", content=b"{}", headers=headers)
    if signed.status_code != 401:  # the provider's signature, never an API key
        wrong.append(f"POST /v1/webhooks/realtimekit: {signed.status_code}")
    if key:  # the ops page: the ops scope signs in, any other is refused
        entered = ops.sign_in(key)
        expected = 303 if "ops" in granted else 403
        if entered.status_code != expected:
            wrong.append(f"POST /ops/sign-in: {entered.status_code}")
    for path in ("/ops", "/ops/bookings", f"/ops/bookings/{stream.id}", "/ops/webhooks",
                 f"/ops/webhooks/{foreign}", "/ops/series", f"/ops/series/{series}",
                 "/ops/capacity"):  # fmt: skip
        answer = ops.client.get(path)
        expected = 200 if key and "ops" in granted else 303
        if answer.status_code != expected:
            wrong.append(f"GET {path}: {answer.status_code}")
    assert wrong == [], "\n".join(wrong)
