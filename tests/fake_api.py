"""Pytest plugin: the fake RealtimeKit server, clients against it, and the upstream contract.

Register with ``pytest_plugins = ["tests.fake_api"]``. The contract is the in-repository copy
in ``tests/contracts/``, found from this file, so the tests run wherever the repository is
cloned and need nothing beside it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from worker.dev.fake_realtimekit import FakeRealtimeKit
from worker.settings import Secret
from worker.upstream.realtimekit import RealtimeKitClient

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTRACT = REPO_ROOT / "tests" / "contracts" / "realtimekit-livestreams.openapi.json"
APP_PREFIX = "/accounts/{account_id}/realtime/kit/{app_id}"
START_PATH = APP_PREFIX + "/meetings/{meeting_id}/livestreams"
ACTIVE_PATH = APP_PREFIX + "/meetings/{meeting_id}/active-livestream"
STOP_PATH = APP_PREFIX + "/meetings/{meeting_id}/active-livestream/stop"
GET_PATH = APP_PREFIX + "/livestreams/{livestream_id}"

ACCOUNT_ID = "0123456789abcdef0123456789abcdef"  # 32 characters, the contract's maximum
APP_ID = "app-under-test"
FAKE_TOKEN = "fake-token"
# Short enough that hang tests finish fast, long enough for a loaded CI machine.
SHORT_TIMEOUT = httpx.Timeout(connect=1.0, read=0.5, write=1.0, pool=1.0)


@cache
def contract() -> dict[str, Any]:
    return json.loads(CONTRACT.read_text(encoding="utf-8"))


def contract_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the contract's components beside it, so ``#/components/..`` resolves."""
    return {**schema, "components": contract()["components"]}


def request_schema(path: str = START_PATH, method: str = "post") -> dict[str, Any]:
    body = contract()["paths"][path][method]["requestBody"]
    return contract_schema(body["content"]["application/json"]["schema"])


def response_schema(path: str, method: str, status: str) -> dict[str, Any]:
    response = contract()["paths"][path][method]["responses"][status]
    return contract_schema(response["content"]["application/json"]["schema"])


def response_example(path: str, method: str, status: str) -> dict[str, Any]:
    response = contract()["paths"][path][method]["responses"][status]
    return response["content"]["application/json"]["examples"]["example-1"]["value"]


def component_schema(name: str) -> dict[str, Any]:
    return contract_schema({"$ref": f"#/components/schemas/{name}"})


def validate(instance: Any, schema: dict[str, Any]) -> None:
    """Validate as OpenAPI 3.0 (``nullable``, formats), raising ValidationError on a mismatch."""
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    OAS30Validator(schema, format_checker=oas30_format_checker).validate(instance)


def new_meeting() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def fake_api() -> Iterator[FakeRealtimeKit]:
    """A fake RealtimeKit server on a free loopback port, stopped after the test."""
    with FakeRealtimeKit(token=FAKE_TOKEN, hang_seconds=5.0) as fake:
        yield fake


@pytest.fixture
def rtk_client(fake_api: FakeRealtimeKit) -> Iterator[Callable[..., RealtimeKitClient]]:
    """Factory: ``rtk_client(token=..., timeout=..., base_url=...)`` builds a client for the
    fake (short timeouts by default) and closes it after the test."""
    clients: list[RealtimeKitClient] = []

    def make(
        *,
        token: str = FAKE_TOKEN,
        timeout: httpx.Timeout = SHORT_TIMEOUT,
        base_url: str | None = None,
    ) -> RealtimeKitClient:
        client = RealtimeKitClient(
            base_url=base_url or fake_api.base_url, token=Secret(token), timeout=timeout
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def meeting_id() -> str:
    return new_meeting()
