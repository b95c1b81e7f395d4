"""Auth (401, 403: nothing changed either way), /healthz, /v1/status and /openapi.json."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from models import ApiKey, DispatcherHeartbeat
from models.db import db_now, get_sessionmaker
from tests.dbdump import dump
from tests.http_api import AT, MEETING, Api
from worker.dispatch import tick
from worker.http import apikeys


@pytest.fixture
def api(settings) -> Api:
    return Api(settings)


def _expired_key(api: Api) -> str:
    key = api.key("bookings:write", expires="1h")
    with get_sessionmaker(api.settings.database_url).begin() as s:
        s.execute(update(ApiKey).values(expires_at=db_now(s) - timedelta(seconds=1)))
    return key


def _revoked_key(api: Api) -> str:
    key = api.key("bookings:write")
    with get_sessionmaker(api.settings.database_url).begin() as s:
        apikeys.revoke(s, f"key{api._made}")
    return key


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer lsk_000000000000_" + "A" * 43,
        "Bearer not-a-key",
        "expired",
        "revoked",
    ],
)
def test_without_a_good_key_it_is_401_and_nothing_changes(api, env, authorization) -> None:
    if authorization == "expired":
        authorization = f"Bearer {_expired_key(api)}"
    elif authorization == "revoked":
        authorization = f"Bearer {_revoked_key(api)}"
    headers = {} if authorization is None else {"Authorization": authorization}
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    body = {"meeting_id": MEETING, "at": AT}
    for answer in (
        api.client.post("/v1/bookings", json=body, headers=headers),
        api.client.get("/v1/bookings", headers=headers),
        api.client.get("/v1/status", headers=headers),
    ):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.headers["content-type"] == "application/problem+json"
        if authorization:
            assert authorization.split()[-1] not in answer.text
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before


@pytest.mark.parametrize(
    ("scopes", "method", "path"),
    [
        (["bookings:read"], "POST", "/v1/bookings"),
        (["bookings:write"], "GET", "/v1/status"),
        (["stream-keys:read"], "GET", "/v1/bookings"),
        (["ops"], "GET", "/v1/bookings/{id}/stream-key"),
    ],
)
def test_a_key_without_the_scope_is_403_and_nothing_changes(api, env, scopes, method, path):
    booked = api.book(api.auth("bookings:write"))
    headers = api.auth(*scopes)
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    body = {"meeting_id": MEETING, "at": "2031-02-01T10:00:00Z"}
    answer = api.client.request(
        method,
        path.format(id=booked["id"]),
        headers=headers,
        json=body if method == "POST" else None,
    )
    assert answer.status_code == 403
    assert "insufficient_scope" in answer.headers["www-authenticate"]
    assert answer.json()["status"] == 403
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before


def test_ops_may_read_and_write_bookings_and_use_is_noted(api, settings) -> None:
    headers = api.auth("ops")
    booked = api.book(headers)
    assert api.client.get(f"/v1/bookings/{booked['id']}", headers=headers).status_code == 200
    with get_sessionmaker(settings.database_url)() as s:
        assert s.query(ApiKey).one().last_used_at is not None


def test_healthz_needs_no_key_and_no_database(tmp_path) -> None:
    from worker.settings import Settings

    missing = Settings.from_env({"LIVESTREAMS_DATABASE_URL": f"sqlite:///{tmp_path}/no/such.db"})
    answer = Api(missing).client.get("/healthz")
    assert answer.status_code == 200 and answer.json() == {"ok": True}


def test_status_is_what_the_cli_prints_200_healthy_503_not(api, settings, book) -> None:
    headers = api.auth("ops")
    never = api.client.get("/v1/status", headers=headers)
    assert never.status_code == 503 and not never.json()["healthy"]
    assert "never ticked" in never.json()["problems"][0]

    book()
    tick(get_sessionmaker(settings.database_url), settings, lambda c: None)
    fresh = api.client.get("/v1/status", headers=headers)
    assert fresh.status_code == 200, fresh.text
    data = fresh.json()
    assert data["healthy"] and data["counts"]["scheduled"] == 1

    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(update(DispatcherHeartbeat).values(last_tick_at=db_now(s) - timedelta(minutes=5)))
    stale = api.client.get("/v1/status", headers=headers)
    assert stale.status_code == 503 and "last dispatch tick" in stale.json()["problems"][0]


def test_openapi_names_every_endpoint_and_the_bearer_scheme(api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert set(spec["paths"]) >= {
        "/healthz",
        "/v1/status",
        "/v1/bookings",
        "/v1/bookings/{stream_id}",
        "/v1/bookings/{stream_id}/cancel",
        "/v1/bookings/{stream_id}/reschedule",
        "/v1/bookings/{stream_id}/retry",
        "/v1/bookings/{stream_id}/stream-key",
    }
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    unknown = api.client.get("/v1/nothing-here")
    assert unknown.status_code == 404 and unknown.headers["content-type"].endswith("problem+json")
