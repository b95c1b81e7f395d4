"""The holes an adversarial review found in the HTTP API, the ops page and the webhooks, each
answered as a user sees it: status codes, bodies, rows. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import uuid

import pytest
from sqlalchemy import select

from models import WebhookEndpoint
from models.db import get_sessionmaker
from tests.dbdump import dump
from tests.http_api import Api
from tests.ops_page import OpsPage, alerts
from worker import endpoints
from worker.crypto import cipher_for

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
