"""/v1/webhook-endpoints: scopes, the secret in the create answer only, problems for bad input,
and deliveries with replay."""

from __future__ import annotations

import pytest

from models.db import get_sessionmaker
from tests.conftest import tuned
from tests.dbdump import dump
from tests.http_api import Api
from worker.bookings import booking

URL = "http://127.0.0.1:9/hooks"


@pytest.fixture
def api(settings) -> Api:
    return Api(tuned(settings, webhooks={"allow_private": True}))


def test_create_shows_the_secret_once_and_reads_never(api) -> None:
    headers = api.auth("webhooks:manage", "bookings:read")
    answer = api.client.post(
        "/v1/webhook-endpoints", json={"url": URL, "event_types": ["stream.live"]}, headers=headers
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert answer.headers["location"] == f"/v1/webhook-endpoints/{created['id']}"
    for path in ("/v1/webhook-endpoints", f"/v1/webhook-endpoints/{created['id']}"):
        read = api.client.get(path, headers=headers)
        assert read.status_code == 200 and secret not in read.text and 'secret"' not in read.text


@pytest.mark.parametrize("scopes", [("bookings:read",), ("bookings:write", "stream-keys:read")])
def test_other_scopes_get_403_and_nothing_changes(api, env, scopes) -> None:
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    answer = api.client.post("/v1/webhook-endpoints", json={"url": URL}, headers=api.auth(*scopes))
    assert answer.status_code == 403
    after = dump(env["LIVESTREAMS_DATABASE_URL"])
    assert before.get("webhook_endpoints") == after.get("webhook_endpoints")


def test_ops_may_manage_endpoints(api) -> None:
    answer = api.client.post("/v1/webhook-endpoints", json={"url": URL}, headers=api.auth("ops"))
    assert answer.status_code == 201 and len(answer.json()["event_types"]) == 12  # every type


def test_an_unsafe_url_is_a_problem_naming_the_field(settings) -> None:
    api = Api(settings)  # the guard on
    answer = api.client.post(
        "/v1/webhook-endpoints",
        json={"url": URL},
        headers=api.auth("webhooks:manage", "bookings:read"),
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"] == [
        {"field": "url", "message": answer.json()["errors"][0]["message"]}
    ]
    assert "loopback" in answer.json()["detail"]


def test_unknown_endpoint_is_404(api) -> None:
    headers = api.auth("webhooks:manage", "bookings:read")
    for path in (
        "/v1/webhook-endpoints/00000000-0000-0000-0000-000000000000",
        "/v1/webhook-endpoints/x",
    ):
        assert api.client.get(path, headers=headers).status_code == 404


def test_disable_enable_rotate_deliveries_and_replay(api, settings) -> None:
    headers = api.auth("webhooks:manage", "bookings:read")
    created = api.client.post("/v1/webhook-endpoints", json={"url": URL}, headers=headers).json()
    base = f"/v1/webhook-endpoints/{created['id']}"
    disabled = api.client.post(f"{base}/disable", json={"reason": "moving"}, headers=headers)
    assert disabled.json()["enabled"] is False and disabled.json()["disabled_reason"] == "moving"
    assert api.client.post(f"{base}/enable", headers=headers).json()["enabled"] is True
    rotated = api.client.post(f"{base}/rotate-secret", headers=headers).json()
    assert rotated["secret"] != created["secret"] and rotated["previous_secret_valid_until"]
    booked = api.book(api.auth("bookings:write"))
    with get_sessionmaker(settings.database_url).begin() as s:
        booking.cancel(s, booking.find(s, booked["id"]))
    (delivery,) = api.client.get(f"{base}/deliveries", headers=headers).json()
    assert delivery["event_type"] == "booking.cancelled" and delivery["state"] == "pending"
    replayed = api.client.post(f"{base}/deliveries/{delivery['id']}/replay", headers=headers)
    assert replayed.status_code == 202
    assert replayed.json()["event_id"] == delivery["event_id"]
    other = api.client.post(
        "/v1/webhook-endpoints/00000000-0000-0000-0000-000000000000/deliveries/"
        f"{delivery['id']}/replay",
        headers=headers,
    )
    assert other.status_code == 404
