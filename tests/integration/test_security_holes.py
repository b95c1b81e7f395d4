"""The holes an adversarial review found in the HTTP API, the ops page and the webhooks, each
answered as a user sees it: status codes, bodies, rows. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import uuid

import pytest
from sqlalchemy import update

from models import ScheduledStream
from models.db import get_sessionmaker
from tests.dbdump import dump
from tests.http_api import Api
from tests.ops_page import OpsPage, alerts
from worker.crypto import StreamKeyCipher, cipher_for, new_key
from worker.notify import endpoints
from worker.settings import Secret

PROBLEM = "application/problem+json"


@pytest.fixture
def api(settings) -> Api:
    return Api(settings)


@pytest.fixture
def ops(settings) -> OpsPage:
    return OpsPage(settings, prefix="ops")


def forged(instant: str) -> str:
    raw = f"{instant}|{uuid.uuid4()}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


FORGED = ["0001-01-01T00:00+01:00", "9999-12-31T23:59:59-01:00", "1900-01-01T00:00:00+00:00"]


@pytest.mark.parametrize("instant", FORGED)
def test_a_forged_cursor_is_422_naming_cursor_not_503(api, instant) -> None:
    reader = api.auth("bookings:read")
    answer = api.client.get("/v1/bookings", params={"cursor": forged(instant)}, headers=reader)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["errors"][0]["field"] == "cursor"


def an_endpoint(settings) -> uuid.UUID:
    with get_sessionmaker(settings.database_url).begin() as s:
        made = endpoints.add(
            s, settings, cipher_for(settings, create=True), url="https://hooks.example.com/in",
            event_types=["*"], resolver=lambda h, p: ["93.184.216.34"],
        )  # fmt: skip
        return made.endpoint.id


@pytest.mark.parametrize("instant", FORGED)
def test_a_forged_cursor_on_the_ops_pages_says_so_and_is_not_a_5xx(ops, settings, instant) -> None:
    ops.signed_in()
    listed = ops.client.get("/ops/bookings", params={"cursor": forged(instant)})
    assert listed.status_code == 422 and "cursor: not a cursor" in alerts(listed.text)[0]
    endpoint = an_endpoint(settings)
    shown = ops.client.get(f"/ops/webhooks/{endpoint}", params={"cursor": forged(instant)})
    assert shown.status_code == 422 and "cursor: not a cursor" in alerts(shown.text)[0]


def test_a_nul_in_a_webhook_url_or_disable_reason_is_422_not_503(api, settings) -> None:
    manager = api.auth("webhooks:manage")
    before = dump(settings.database_url)
    for url in ("https://hooks.example.com/\x00in", "https://hooks.example.com/\x07"):
        answer = api.client.post("/v1/webhook-endpoints", json={"url": url}, headers=manager)
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "url"
    endpoint = an_endpoint(settings)
    before = dump(settings.database_url)
    path = f"/v1/webhook-endpoints/{endpoint}/disable"
    answer = api.client.post(path, json={"reason": "moving\x00hosts"}, headers=manager)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "reason"
    assert dump(settings.database_url) == before


def test_a_nul_in_the_ops_pages_disable_reason_is_the_forms_error(ops, settings) -> None:
    ops.signed_in()
    endpoint = an_endpoint(settings)
    before = dump(settings.database_url)
    answer = ops.post(f"/ops/webhooks/{endpoint}/disable", reason="moving\x00hosts")
    assert answer.status_code == 422
    assert "reason: must not contain control characters" in alerts(answer.text)[0]
    assert dump(settings.database_url) == before


def test_a_trailing_nul_after_an_instant_is_refused_and_nothing_is_stored(api, settings) -> None:
    writer = api.auth("bookings:write")
    before = dump(settings.database_url)
    body = {"meeting_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "at": "2031-08-01T10:00:00Z\0"}
    answer = api.client.post("/v1/bookings", json=body, headers=writer)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "at"
    assert dump(settings.database_url) == before


def test_signing_out_ends_the_session_for_a_copied_cookie_too(ops, api, book) -> None:
    ops.signed_in()
    stream = book()
    copied = dict(ops.client.cookies)
    token = ops.csrf
    assert ops.post("/ops/sign-out").status_code == 303
    thief = OpsPage(ops.settings)
    thief.client.cookies.update(copied)
    read = thief.client.get("/ops/bookings")
    assert read.status_code == 303 and read.headers["location"].startswith("/ops/sign-in")
    cancel = thief.client.post(f"/ops/bookings/{stream.id}/cancel", data={"csrf": token})
    assert cancel.status_code == 303 and cancel.headers["location"].startswith("/ops/sign-in")
    reader = api.auth("bookings:read")
    shown = api.client.get(f"/v1/bookings/{stream.id}", headers=reader).json()
    assert shown["state"] == "scheduled"


def test_signing_in_again_after_signing_out_works(ops) -> None:
    key = ops.signed_in()
    assert ops.post("/ops/sign-out").status_code == 303
    assert ops.sign_in(key).status_code == 303
    assert ops.client.get("/ops").status_code == 200


def test_a_webhooks_manage_key_cannot_read_bookings_through_webhooks_nor_touch_others(
    api, settings
) -> None:
    manager = api.auth("webhooks:manage")
    url = {"url": "https://hooks.example.com/in"}
    refused = api.client.post("/v1/webhook-endpoints", json=url, headers=manager)
    assert refused.status_code == 403 and "bookings:read" in refused.json()["detail"]
    theirs = an_endpoint(settings)  # made by the CLI: ops manages it
    before = dump(settings.database_url)
    base = f"/v1/webhook-endpoints/{theirs}"
    tried = [("GET", base), ("POST", f"{base}/disable"), ("POST", f"{base}/rotate-secret"),
             ("GET", f"{base}/deliveries")]  # fmt: skip
    for method, path in tried:
        answer = api.client.request(method, path, headers=manager)
        assert answer.status_code == 404, (path, answer.text)
        assert "secret" not in answer.json()
    assert api.client.get("/v1/webhook-endpoints", headers=manager).json() == []
    after = dump(settings.database_url)
    assert after["webhook_endpoints"] == before["webhook_endpoints"]
    ops = api.auth("ops")
    assert api.client.post(f"{base}/disable", headers=ops).json()["enabled"] is False


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{bad", 422, "is not JSON at character 1: Expecting property name"),
        (
            b'{"at": "2031-01-01T10:00:00Z"} trailing',
            422,
            "is not JSON at character 31: Extra data",
        ),
        (b'{"at": "\xff"}', 400, "is not JSON: not UTF-8 text at byte 8"),
    ],
)
def test_a_body_that_is_not_json_is_named_so_with_where(api, body, status, message) -> None:
    writer = api.auth("bookings:write")
    headers = {**writer, "content-type": "application/json"}
    answer = api.client.post("/v1/bookings", content=body, headers=headers)
    assert answer.status_code == status and answer.headers["content-type"] == PROBLEM
    (error,) = answer.json()["errors"]
    assert error["field"] == "body" and error["message"].startswith(message)


def test_a_stream_key_no_key_decrypts_does_not_break_the_list(api, settings, book) -> None:
    readable, broken = book(), book()
    stranger = StreamKeyCipher((Secret(new_key()),))
    ours = cipher_for(settings, create=True)
    with get_sessionmaker(settings.database_url).begin() as s:
        for stream, cipher in ((readable, ours), (broken, stranger)):
            secret = Secret("sk_live_0123456789abcdef")
            s.execute(
                update(ScheduledStream)
                .where(ScheduledStream.id == stream.id)
                .values(stream_key_ciphertext=cipher.encrypt(secret), state="started")
            )
    reader = api.auth("bookings:read")
    listed = api.client.get("/v1/bookings", headers=reader)
    assert listed.status_code == 200
    keys = {item["id"]: item["stream_key"] for item in listed.json()["items"]}
    assert keys[str(readable.id)] == "****cdef"
    assert "cannot decrypt" in keys[str(broken.id)]
    shown = api.client.get(f"/v1/bookings/{broken.id}", headers=reader)
    assert shown.status_code == 200 and "cannot decrypt" in shown.json()["stream_key"]


def test_no_docs_page_loads_a_cdn_script_and_every_ops_answer_has_a_strict_csp(ops) -> None:
    for path in ("/docs", "/redoc"):
        assert ops.client.get(path).status_code == 404
    assert ops.client.get("/openapi.json").status_code == 200
    ops.signed_in()
    answers = [
        ops.client.get("/ops"),
        ops.client.get("/ops/static/ops.css"),
        ops.client.get("/ops/bookings/nope"),
        ops.client.get("/ops/nothing-here"),
    ]
    for answer in answers:
        policy = answer.headers.get("content-security-policy", "")
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'none'", answer.url
        # The one script is the page's own file: nothing inline, nothing from elsewhere.
        assert directives["script-src"] == "'self'" and directives["connect-src"] == "'self'"
        assert answer.headers["x-frame-options"] == "DENY"
