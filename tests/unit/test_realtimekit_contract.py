"""The client against the published contract: what it sends validates, what it reads parses.

The start schema allows extra keys, so a body with top-level width/height would still
validate: the nesting is asserted on its own (contract README, "Start").
"""

from __future__ import annotations

import json
import string

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema.exceptions import ValidationError

from tests.conftest import examples
from tests.fake_api import (
    ACCOUNT_ID,
    ACTIVE_PATH,
    APP_ID,
    GET_PATH,
    START_PATH,
    STOP_PATH,
    contract,
    request_schema,
    response_example,
    validate,
)
from worker.settings import Secret
from worker.upstream.realtimekit import USER_AGENT, RealtimeKitClient, start_body

MEETING = "bbb03399-24e3-4b0c-90ec-172e97e636be"
TOKEN = "contract-test-token"
NAMES = st.none() | st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=40)
SIZES = st.none() | st.integers(min_value=1, max_value=8192)


def capture(
    status: int = 201, body: object = None
) -> tuple[RealtimeKitClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    answer = body if body is not None else response_example(START_PATH, "post", "201")

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=answer)

    client = RealtimeKitClient(
        base_url="https://api.cloudflare.com/client/v4",
        token=Secret(TOKEN),
        transport=httpx.MockTransport(handler),
    )
    return client, seen


def test_the_contract_is_the_one_we_expect():
    # Guards the helpers below: a moved or renamed contract must fail here, loudly.
    paths = contract()["paths"]
    assert {START_PATH, ACTIVE_PATH, STOP_PATH, GET_PATH} <= set(paths)
    assert "post" in paths[START_PATH] and "get" in paths[ACTIVE_PATH]


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "has space"},
        {"name": "dots.are.out"},
        {"name": 5},
        {"video_config": {"width": "1280"}},
        {"video_config": {"height": 720.5}},
        {"video_config": [1280, 720]},
        [],
    ],
)
def test_the_request_schema_rejects_bad_bodies(bad):
    # Proves the validation below can fail at all.
    with pytest.raises(ValidationError):
        validate(bad, request_schema())


@settings(max_examples=examples(200), deadline=None)
@given(name=NAMES, width=SIZES, height=SIZES)
def test_every_start_request_validates_against_the_contract(name, width, height):
    client, seen = capture()
    with client:
        client.start_livestream(ACCOUNT_ID, APP_ID, MEETING, name=name, width=width, height=height)
    (request,) = seen
    body = json.loads(request.content)
    validate(body, request_schema())
    assert set(body) <= {"name", "video_config"}
    assert body.get("name") == name
    expected_video = {k: v for k, v in (("width", width), ("height", height)) if v is not None}
    assert body.get("video_config", {}) == expected_video


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (1280, None), (None, 720)])
def test_width_and_height_are_never_sent_at_the_top_level(width, height):
    client, seen = capture()
    with client:
        client.start_livestream(
            ACCOUNT_ID, APP_ID, MEETING, name="team-sync", width=width, height=height
        )
    body = json.loads(seen[0].content)
    assert "width" not in body and "height" not in body
    assert body["video_config"] == start_body(None, width, height)["video_config"]


def test_start_request_line_and_headers_follow_the_contract():
    client, seen = capture()
    with client:
        client.start_livestream(ACCOUNT_ID, APP_ID, MEETING, name="x")
    request = seen[0]
    assert request.method == "POST"
    assert request.url.path == "/client/v4" + START_PATH.format(
        account_id=ACCOUNT_ID, app_id=APP_ID, meeting_id=MEETING
    )
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT == "livestream-scheduler/0.1.0"


@pytest.mark.parametrize(
    ("call", "method", "template"),
    [
        ("get_active_livestream", "GET", ACTIVE_PATH),
        ("stop_active_livestream", "POST", STOP_PATH),
        ("get_livestream", "GET", GET_PATH),
    ],
)
def test_other_requests_use_the_contract_paths(call, method, template):
    client, seen = capture(200, {"success": True, "data": {"id": "x"}})
    with client:
        getattr(client, call)(ACCOUNT_ID, APP_ID, MEETING)
    request = seen[0]
    assert request.method == method
    path = template.format(
        account_id=ACCOUNT_ID, app_id=APP_ID, meeting_id=MEETING, livestream_id=MEETING
    )
    assert request.url.path == "/client/v4" + path
    assert request.content == b""  # the contract gives none of these a body


def test_path_segments_are_quoted():
    client, seen = capture()
    with client:
        client.start_livestream(ACCOUNT_ID, APP_ID, "../../livestreams/x")
    assert seen[0].url.raw_path.decode().endswith("/meetings/..%2F..%2Flivestreams%2Fx/livestreams")


def test_published_start_example_parses():
    example = response_example(START_PATH, "post", "201")["data"]
    client, _ = capture()
    with client:
        ls = client.start_livestream(ACCOUNT_ID, APP_ID, MEETING)
    assert ls.id == example["id"]
    assert ls.ingest_server == example["ingest_server"]
    assert ls.playback_url == example["playback_url"]
    assert ls.status == example["status"] == "INVOKED"
    assert ls.stream_key is not None and ls.stream_key.get() == example["stream_key"]
    assert ls.call is not None and ls.call.status == 201


def test_published_active_livestream_example_parses():
    example = response_example(ACTIVE_PATH, "get", "200")
    client, _ = capture(200, example)
    with client:
        ls = client.get_active_livestream(ACCOUNT_ID, APP_ID, MEETING)
    assert ls is not None
    assert (ls.id, ls.status, ls.meeting_id) == (
        example["data"]["id"],
        "LIVE",
        example["data"]["meeting_id"],
    )
    assert (
        ls.created_at is not None
        and ls.created_at.isoformat() == "2023-07-15T11:58:08.404000+00:00"
    )
    assert ls.stream_key is None  # the example has none; "disabled": false is ignored


def test_published_livestream_example_parses():
    example = response_example(GET_PATH, "get", "200")
    client, _ = capture(200, example)
    with client:
        ls = client.get_livestream(ACCOUNT_ID, APP_ID, example["data"]["livestream"]["id"])
    inner = example["data"]["livestream"]
    assert (ls.id, ls.status, ls.ingest_server) == (inner["id"], "LIVE", inner["ingest_server"])
    assert ls.stream_key is not None and ls.stream_key.get() == inner["stream_key"]


def test_published_stop_example_is_a_stop():
    client, _ = capture(200, response_example(STOP_PATH, "post", "200"))
    with client:
        assert client.stop_active_livestream(ACCOUNT_ID, APP_ID, MEETING) is None
