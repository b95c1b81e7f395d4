"""The ops page's sign-in, session and CSRF, on SQLite and PostgreSQL: no page or action
without a session, a key without `ops` refused, a forged form refused; nothing changed."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models import ApiKey, ScheduledStream
from models.db import get_sessionmaker
from tests.dbdump import dump
from tests.ops_page import OpsPage, alerts, csrf_of
from worker.http import apikeys

PAGES = ["/ops", "/ops/bookings?state=failed", "/ops/bookings/{id}", "/ops/bookings/{id}/cancel"]


@pytest.fixture
def ops(settings) -> OpsPage:
    return OpsPage(settings)


@pytest.fixture
def booked(book) -> ScheduledStream:
    return book(external_ref="evt-1", at=datetime.now(UTC) + timedelta(hours=2))


@pytest.mark.parametrize("path", PAGES)
def test_every_page_without_a_session_redirects_to_sign_in(ops, booked, path) -> None:
    wanted = path.format(id=booked.id)
    answer = ops.client.get(wanted)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ops/sign-in?next=")
    # Signing in from there goes back to the page asked for.
    landed = ops.sign_in(ops.key("ops"), wanted=wanted)
    assert landed.status_code == 303 and landed.headers["location"] == wanted
    assert ops.client.get(wanted).status_code == 200


@pytest.mark.parametrize("path", ["/ops/bookings/{id}/cancel", "/ops/bulk/cancel", "/ops/sign-out"])
def test_an_action_without_a_session_redirects_and_changes_nothing(ops, env, booked, path):
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    answer = ops.client.post(path.format(id=booked.id), data={"csrf": "x", "state": "scheduled"})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ops/sign-in")
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before


def test_sign_in_sets_a_signed_httponly_strict_cookie_without_the_key(ops) -> None:
    key = ops.key("ops")
    answer = ops.sign_in(key)
    assert answer.status_code == 303 and answer.headers["location"] == "/ops"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("ops_session"))
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes and "samesite=strict" in attributes
    assert "path=/ops" in attributes and "secure" not in attributes  # plain http here
    # lsk_<prefix>_<secret>: split twice only, as the secret's own alphabet has "_" in it
    # (split at every "_", its last piece could be one letter, found in any cookie by chance).
    _, prefix, secret_part = key.split("_", 2)
    assert len(prefix) == 12 and len(secret_part) == 43
    assert secret_part not in cookie and prefix not in cookie
    home = ops.client.get("/ops")
    assert home.status_code == 200 and "signed in as key1" in home.text
    assert key not in home.text


def test_over_https_the_cookie_is_secure(settings) -> None:
    ops = OpsPage(settings, base_url="https://testserver")
    answer = ops.sign_in(ops.key("ops"))
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("ops_session"))
    assert "secure" in [part.strip().lower() for part in cookie.split(";")]


@pytest.mark.parametrize(
    ("presented", "status", "said"),
    [
        ("lsk_000000000000_" + "A" * 43, 401, "Not signed in: unknown API key."),
        ("not-a-key", 401, "Not signed in: no API key, or not one of ours (lsk_...)."),
        ("reader", 403, "lacks the ops scope (it has bookings:read)"),
        ("revoked", 401, "Not signed in: this API key was revoked."),
    ],
)
def test_a_bad_key_or_one_without_ops_is_refused(ops, env, presented, status, said) -> None:
    if presented == "reader":
        presented = ops.key("bookings:read")
    elif presented == "revoked":
        presented = ops.key("ops")
        with get_sessionmaker(env["LIVESTREAMS_DATABASE_URL"]).begin() as s:
            apikeys.revoke(s, f"key{ops._made}")
    answer = ops.sign_in(presented)
    assert answer.status_code == status
    assert any(said in line for line in alerts(answer.text)), alerts(answer.text)
    assert presented not in answer.text
    assert not any(c.startswith("ops_session=") for c in answer.headers.get_list("set-cookie"))
    assert ops.client.get("/ops").status_code == 303


def test_sign_in_without_its_csrf_token_is_refused(ops) -> None:
    key = ops.key("ops")
    ops.client.get("/ops/sign-in")
    answer = ops.client.post("/ops/sign-in", data={"api_key": key, "csrf": "forged"})
    assert answer.status_code == 403
    assert "nothing was done" in answer.text
    assert ops.client.get("/ops").status_code == 303


def test_sign_out_ends_the_session(ops) -> None:
    ops.signed_in()
    answer = ops.post("/ops/sign-out")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ops/sign-in?signed_out=1"
    assert "Signed out." in alerts(ops.client.get(answer.headers["location"]).text)
    assert ops.client.get("/ops").status_code == 303


def test_revoking_the_key_ends_its_sessions(ops, env) -> None:
    ops.signed_in()
    assert ops.client.get("/ops").status_code == 200
    with get_sessionmaker(env["LIVESTREAMS_DATABASE_URL"]).begin() as s:
        apikeys.revoke(s, "key1")
    assert ops.client.get("/ops").status_code == 303


def test_a_tampered_or_foreign_cookie_is_no_session(ops, settings) -> None:
    ops.signed_in()
    cookie = ops.client.cookies["ops_session"]
    payload, mac = cookie.split(".")
    # Another key's id under the same signature: refused.
    other = ops.key("ops")
    with get_sessionmaker(settings.database_url)() as s:
        other_id = s.scalars(select(ApiKey.id).where(ApiKey.name == "key2")).one()
    assert other
    forged = base64.urlsafe_b64encode(
        f"{other_id}|sid|{int(datetime.now(UTC).timestamp()) + 3600}".encode()
    ).decode()
    for value in (f"{forged.rstrip('=')}.{mac}", f"{payload}.{mac[:-2]}AA", "garbage", ""):
        fresh = OpsPage(settings)
        fresh.client.cookies.set("ops_session", value, path="/ops")
        assert fresh.client.get("/ops").status_code == 303, value


@pytest.mark.parametrize("token", [None, "", "forged", "other-session"])
def test_a_forged_form_is_403_and_changes_nothing(ops, settings, env, booked, token) -> None:
    ops.signed_in()
    if token == "other-session":
        other = OpsPage(settings, prefix="other")
        other.signed_in()
        token = other.csrf
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    data = {} if token is None else {"csrf": token}
    for path in (f"/ops/bookings/{booked.id}/cancel", "/ops/bulk/cancel"):
        answer = ops.client.post(path, data={**data, "state": "scheduled"})
        assert answer.status_code == 403
        assert "nothing was done" in answer.text
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before
    # The page's own token does it.
    assert ops.post(f"/ops/bookings/{booked.id}/cancel").status_code == 303


def test_every_form_on_every_page_carries_the_csrf_token(ops, booked) -> None:
    ops.signed_in()
    for path in ("/ops", "/ops/bookings", f"/ops/bookings/{booked.id}",
                 f"/ops/bookings/{booked.id}/reschedule", "/ops/bulk/cancel"):  # fmt: skip
        html = ops.client.get(path).text
        forms = html.count("<form")
        gets = html.count('method="get"')
        assert html.count('name="csrf"') == forms - gets, path
        assert csrf_of(html) == ops.csrf


def test_the_next_page_after_sign_in_is_never_another_site(ops) -> None:
    key = ops.key("ops")
    for wanted in ("https://evil.example/", "//evil.example", "/v1/bookings"):
        answer = ops.sign_in(key, wanted=wanted)
        assert answer.headers["location"] == "/ops"


def test_a_session_ends_no_later_than_its_key(ops) -> None:
    answer = ops.sign_in(ops.key("ops", expires="1h"))
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("ops_session"))
    max_age = int(re.search(r"Max-Age=(\d+)", cookie)[1])
    assert 0 < max_age <= 3600  # the key's hour, not the session's twelve


def test_the_ops_page_is_not_part_of_the_api_document(ops) -> None:
    paths = ops.client.get("/openapi.json").json()["paths"]
    assert paths and not [p for p in paths if p.startswith("/ops")]
