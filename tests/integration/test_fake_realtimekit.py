"""The fake RealtimeKit server: contract fidelity, fault injection, records, load, the
livestream lifecycle and its signed webhooks (received by a real loopback receiver).

Driven with plain httpx so these tests check the fake, not our client.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest
from click.testing import CliRunner

from tests.fake_api import (
    ACCOUNT_ID,
    ACTIVE_PATH,
    APP_ID,
    FAKE_TOKEN,
    GET_PATH,
    REPO_ROOT,
    START_PATH,
    STOP_PATH,
    component_schema,
    new_meeting,
    response_schema,
    validate,
)
from tests.webhook_receiver import WebhookReceiver, public_key, signature_valid
from worker.cli import cli
from worker.dev.fake_realtimekit import FakeRealtimeKit, parse_fault

AUTH = {"Authorization": f"Bearer {FAKE_TOKEN}"}
V4_FAILURE = component_schema("cf_api-response-common-failure")
RTK_FAILURE = component_schema("realtimekit_GenericErrorResponse")


def url(fake, template, meeting="", livestream="", account=ACCOUNT_ID, app=APP_ID):
    path = template.format(
        account_id=account, app_id=app, meeting_id=meeting, livestream_id=livestream
    )
    return fake.base_url + path


@pytest.fixture
def http():
    with httpx.Client(headers=AUTH, timeout=5) as client:
        yield client


def start(http, fake, meeting, body=None, headers=None, **kw):
    target = url(fake, START_PATH, meeting, **kw)
    return http.post(target, json={} if body is None else body, headers=headers)


def test_responses_validate_against_the_contract(fake_api, http):
    meeting = new_meeting()
    created = start(http, fake_api, meeting, {"name": "team-sync", "video_config": {"width": 640}})
    assert created.status_code == 201
    validate(created.json(), response_schema(START_PATH, "post", "201"))
    data = created.json()["data"]
    assert set(data) == {"id", "ingest_server", "playback_url", "stream_key", "status"}
    assert data["status"] == "INVOKED"
    active = http.get(url(fake_api, ACTIVE_PATH, meeting))
    assert active.status_code == 200
    validate(active.json(), response_schema(ACTIVE_PATH, "get", "200"))
    assert active.json()["data"]["id"] == data["id"]
    one = http.get(url(fake_api, GET_PATH, livestream=data["id"]))
    validate(one.json(), response_schema(GET_PATH, "get", "200"))
    assert one.json()["data"]["livestream"]["stream_key"] == data["stream_key"]
    stopped = http.post(url(fake_api, STOP_PATH, meeting))
    assert stopped.status_code == 200
    validate(stopped.json(), response_schema(STOP_PATH, "post", "200"))
    # A nameless livestream: GET /livestreams/{id} declares name non-nullable, so it is left out.
    other = start(http, fake_api, new_meeting()).json()["data"]["id"]
    validate(
        http.get(url(fake_api, GET_PATH, livestream=other)).json(),
        response_schema(GET_PATH, "get", "200"),
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": FAKE_TOKEN},
        {"Authorization": "Basic x"},
    ],
)
def test_a_bearer_token_is_required(fake_api, headers):
    with httpx.Client(timeout=5) as http:
        answer = http.post(url(fake_api, START_PATH, new_meeting()), json={}, headers=headers)
    assert answer.status_code == 401
    validate(answer.json(), V4_FAILURE)
    assert answer.json()["errors"][0]["code"] == 10000
    assert fake_api.created == {}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 201),
        ({"name": None}, 201),
        ({"name": ""}, 201),
        ({"name": "a-Z_09"}, 201),
        ({"video_config": {"width": 1280, "height": 720}}, 201),
        ({"name": "x", "extra": 1}, 201),  # the schema allows extra keys
        ({"name": "has space"}, 422),
        ({"name": "dot.ted"}, 422),
        ({"name": "new\nline"}, 422),
        ({"name": 5}, 422),
        ({"width": 1280, "height": 720}, 422),  # stricter than the contract: wrong nesting
        ({"video_config": {"width": "1280"}}, 422),
        ({"video_config": {"width": 1280.0}}, 422),
        ({"video_config": {"width": True}}, 422),
        ({"video_config": {"height": 0}}, 422),
        ({"video_config": {"height": None}}, 422),
        ({"video_config": None}, 422),
        ({"video_config": [1280, 720]}, 422),
        ([], 422),
        ("name", 422),
    ],
)
def test_start_body_validation(fake_api, http, body, status):
    answer = start(http, fake_api, new_meeting(), body)
    assert answer.status_code == status
    if status == 422:
        validate(answer.json(), RTK_FAILURE)
        assert fake_api.created == {}


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[" * 50_000])
def test_start_without_a_json_body_is_422(fake_api, http, raw):
    answer = http.post(url(fake_api, START_PATH, new_meeting()), content=raw)
    assert answer.status_code == 422
    validate(answer.json(), RTK_FAILURE)


@pytest.mark.parametrize(
    ("account", "app", "meeting", "status"),
    [
        ("a" * 32, "b" * 32, new_meeting(), 201),
        ("a" * 33, APP_ID, new_meeting(), 404),
        (ACCOUNT_ID, "b" * 33, new_meeting(), 404),
        (ACCOUNT_ID, APP_ID, "not-a-uuid", 404),
        (ACCOUNT_ID, APP_ID, new_meeting().replace("-", ""), 404),
    ],
    # Named, not derived from the random meeting ids: every parallel test worker must collect
    # the same test names.
    ids=[
        "longest-ids",
        "account-too-long",
        "app-too-long",
        "meeting-not-uuid",
        "meeting-no-dashes",
    ],
)
def test_path_parameters(fake_api, http, account, app, meeting, status):
    answer = start(http, fake_api, meeting, account=account, app=app)
    assert answer.status_code == status
    if status == 404:
        validate(answer.json(), V4_FAILURE)


def test_unknown_route_is_404(fake_api, http):
    assert http.get(fake_api.base_url + "/accounts/a/elsewhere").status_code == 404
    assert http.get(url(fake_api, START_PATH, new_meeting())).status_code == 404  # wrong verb


def test_one_active_livestream_per_meeting(fake_api, http):
    meeting = new_meeting()
    first = start(http, fake_api, meeting).json()["data"]["id"]
    conflict = start(http, fake_api, meeting)
    assert conflict.status_code == 409
    validate(conflict.json(), RTK_FAILURE)
    assert [c.id for c in fake_api.created[meeting]] == [first]
    assert http.post(url(fake_api, STOP_PATH, meeting)).status_code == 200
    none = http.get(url(fake_api, ACTIVE_PATH, meeting))
    assert none.status_code == 404
    validate(none.json(), RTK_FAILURE)
    assert http.post(url(fake_api, STOP_PATH, meeting)).status_code == 404
    second = start(http, fake_api, meeting).json()["data"]["id"]
    assert [c.id for c in fake_api.created[meeting]] == [first, second]
    assert fake_api.stats()["active"] == {meeting: second}
    assert (
        http.get(url(fake_api, GET_PATH, livestream=first)).json()["data"]["livestream"]["status"]
        == "IDLE"
    )


def test_status_turns_live_after_live_after_seconds(http):
    with FakeRealtimeKit(token=FAKE_TOKEN, live_after=0.3) as fake:
        meeting = new_meeting()
        assert start(http, fake, meeting).json()["data"]["status"] == "INVOKED"
        assert http.get(url(fake, ACTIVE_PATH, meeting)).json()["data"]["status"] == "INVOKED"
        time.sleep(0.4)
        assert http.get(url(fake, ACTIVE_PATH, meeting)).json()["data"]["status"] == "LIVE"


def test_requests_are_recorded_without_the_authorization_header(fake_api, http):
    before = time.time()
    meeting = new_meeting()
    start(http, fake_api, meeting, {"name": "rec"}, headers={"X-Probe": "1"})
    start(http, fake_api, meeting)
    (first, second) = fake_api.requests
    assert (first.method, first.endpoint, first.meeting_id) == ("POST", "start", meeting)
    assert json.loads(first.body) == {"name": "rec"}
    assert "authorization" not in first.headers
    assert first.headers["x-probe"] == "1"  # every other header is kept
    assert before <= first.arrived <= second.arrived <= time.time()
    assert (first.response, second.response) == (201, 409)
    assert fake_api.starts_received == 2
    assert FAKE_TOKEN not in json.dumps(fake_api.stats())


def test_scripted_faults_are_used_in_order_and_per_meeting(fake_api, http):
    mine, other = new_meeting(), new_meeting()
    fake_api.script("start", 503, {"status": 429, "retry_after": "7"}, "html502", meeting_id=mine)
    assert start(http, fake_api, other).status_code == 201  # not this meeting's faults
    first = start(http, fake_api, mine)
    assert first.status_code == 503
    validate(first.json(), RTK_FAILURE)
    limited = start(http, fake_api, mine)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "7")
    page = start(http, fake_api, mine)
    assert page.status_code == 502 and page.headers["content-type"].startswith("text/html")
    assert "<title>" in page.text
    assert start(http, fake_api, mine).status_code == 201
    assert fake_api.stats()["faults_pending"] == 0


def test_a_fault_that_creates_first(fake_api, http):
    meeting = new_meeting()
    fake_api.script(
        "start", {"status": 500, "create": True}, {"status": 201, "body": '{"success": true}'}
    )
    assert start(http, fake_api, meeting).status_code == 500
    assert len(fake_api.created[meeting]) == 1
    assert start(http, fake_api, new_meeting()).json() == {"success": True}


@pytest.mark.parametrize(("fault", "creates"), [("drop", True), ("drop_before", False)])
def test_drop_closes_without_an_answer(fake_api, http, fault, creates):
    meeting = new_meeting()
    fake_api.script("start", fault)
    with pytest.raises(httpx.RemoteProtocolError):
        start(http, fake_api, meeting)
    assert (meeting in fake_api.created) == creates
    assert fake_api.requests[-1].response == "drop"


def test_hang_holds_for_hang_seconds_then_closes(fake_api, http):
    fake_api.configure({"hang_seconds": 0.5})
    meeting = new_meeting()
    fake_api.script("start", "hang")
    began = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):
        start(http, fake_api, meeting)
    assert 0.45 <= time.monotonic() - began < 3
    assert len(fake_api.created[meeting]) == 1


def test_stop_releases_a_hanging_request_at_once():
    fake = FakeRealtimeKit(token=FAKE_TOKEN, hang_seconds=60).start()
    fake.script("*", "hang_before")
    errors = []

    def call():
        try:
            with httpx.Client(headers=AUTH, timeout=30) as http:
                start(http, fake, new_meeting())
        except httpx.HTTPError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5
    while fake.stats()["in_flight"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    fake.stop()
    caller.join(5)
    assert time.monotonic() - began < 3
    assert len(errors) == 1 and fake.created == {}


def test_latency_is_added(fake_api, http):
    fake_api.set_latency(0.3, jitter=0.1, endpoint="active")
    began = time.monotonic()
    http.get(url(fake_api, ACTIVE_PATH, new_meeting()))
    assert 0.3 <= time.monotonic() - began < 2
    began = time.monotonic()
    start(http, fake_api, new_meeting())
    assert time.monotonic() - began < 0.3  # only the endpoint asked for


def _run_chaos(seed):
    with FakeRealtimeKit(token=FAKE_TOKEN) as fake, httpx.Client(headers=AUTH, timeout=5) as http:
        fake.set_rates({"5xx": 0.3, "429": 0.2, "drop": 0.1}, seed=seed)
        codes = []
        for _ in range(200):
            try:
                codes.append(start(http, fake, new_meeting()).status_code)
            except httpx.RemoteProtocolError:
                codes.append("drop")
        return codes, fake.stats()


def test_random_faults_follow_their_rates_and_the_seed():
    codes, stats = _run_chaos(seed=7)
    assert codes == _run_chaos(seed=7)[0]  # same seed, same run
    assert codes != _run_chaos(seed=8)[0]
    fives = sum(1 for c in codes if c in (500, 502, 503, 504))
    assert 35 <= fives <= 85
    assert 20 <= codes.count(429) <= 60
    assert 5 <= codes.count("drop") <= 40
    # Every drop created its livestream first (the worst case for the scheduler).
    assert stats["created_total"] == codes.count(201) + codes.count("drop")


def test_rates_stay_on_the_endpoint_asked_for(fake_api, http):
    fake_api.set_rates({"5xx": 1.0}, endpoint="active")
    fake_api.script("stop", 409)  # a later spec must not move the rates elsewhere
    assert http.get(url(fake_api, ACTIVE_PATH, new_meeting())).status_code >= 500
    assert start(http, fake_api, new_meeting()).status_code == 201


def test_the_rate_limit_counts_per_token_and_window(fake_api, http):
    fake_api.set_rate_limit(3, 1.0)
    codes = [start(http, fake_api, new_meeting()).status_code for _ in range(5)]
    assert codes == [201, 201, 201, 429, 429]
    limited = start(http, fake_api, new_meeting())
    assert limited.headers["retry-after"] == "1"
    validate(limited.json(), V4_FAILURE)
    time.sleep(1.05)
    assert start(http, fake_api, new_meeting()).status_code == 201


def test_control_api_over_http(fake_api, http):
    control = fake_api.control_url
    meeting = new_meeting()
    spec = {
        "script": [{"endpoint": "start", "meeting_id": meeting, "faults": [409, "drop_before"]}]
    }
    assert http.post(control + "/faults", json=spec).json() == {"ok": True}
    assert start(http, fake_api, meeting).status_code == 409
    stats = http.get(control + "/stats").json()
    assert stats["starts_received"] == 1 and stats["faults_pending"] == 1
    records = http.get(control + "/requests").json()
    assert records[0]["meeting_id"] == meeting and records[0]["response"] == 409
    bad = http.post(control + "/faults", json={"script": [{"faults": ["nonsense"]}]})
    assert bad.status_code == 400
    assert http.post(control + "/faults", json={"bogus": 1}).status_code == 400
    assert http.get(control + "/stats").json()["faults_pending"] == 1  # unchanged by bad specs
    assert http.post(control + "/reset", json={"faults_only": True}).json() == {"ok": True}
    assert http.get(control + "/stats").json()["requests"] == 1
    assert start(http, fake_api, meeting).status_code == 201
    http.post(control + "/reset")
    assert http.get(control + "/stats").json()["requests"] == 0
    assert fake_api.created == {}
    assert http.get(control + "/nothing").status_code == 404


@pytest.mark.parametrize("spec", [504, "html502", "hang", "drop_before", {"status": 429}])
def test_parse_fault_accepts_the_documented_forms(spec):
    assert parse_fault(spec).action in ("respond", "hang", "drop")


@pytest.mark.parametrize("spec", [99, 600, True, "boom", {"status": "x"}, {"nope": 1}, None])
def test_parse_fault_rejects_others(spec):
    with pytest.raises(ValueError):
        parse_fault(spec)


def test_holds_200_concurrent_requests():
    with FakeRealtimeKit(token=FAKE_TOKEN) as fake:
        # Each answer is held 2 s: long enough for a loaded machine to have sent them all
        # before the first comes back, so the count below does not depend on the load.
        fake.set_latency(2.0)
        limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
        with (
            httpx.Client(headers=AUTH, timeout=20, limits=limits) as http,
            ThreadPoolExecutor(200) as pool,
        ):
            codes = list(
                pool.map(lambda _: start(http, fake, new_meeting()).status_code, range(200))
            )
        stats = fake.stats()
    assert codes == [201] * 200
    # They really were held at the same time, not one after another.
    assert stats["max_in_flight"] >= 150


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.com"])
def test_binds_only_to_loopback(host):
    with pytest.raises(ValueError, match="loopback"):
        FakeRealtimeKit(host=host)


def test_listens_on_loopback():
    with FakeRealtimeKit() as fake:
        assert fake._server.server_address[0] == "127.0.0.1"
        assert fake.base_url == f"http://127.0.0.1:{fake.port}/client/v4"


def test_run_fake_api_prints_its_base_url_and_serves():
    code = (
        "from worker.dev.fake_realtimekit import run_fake_api; run_fake_api('127.0.0.1', 0, 'tok')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:") and line.endswith("/client/v4")
        with httpx.Client(headers={"Authorization": "Bearer tok"}, timeout=5) as http:
            answer = http.post(
                line
                + START_PATH.format(account_id=ACCOUNT_ID, app_id=APP_ID, meeting_id=new_meeting()),
                json={},
            )
        assert answer.status_code == 201
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


# -- the livestream lifecycle ----------------------------------------------------------------
LIVESTREAM = response_schema(GET_PATH, "get", "200")
ACTIVE = response_schema(ACTIVE_PATH, "get", "200")


def active_status(http, fake, meeting):
    answer = http.get(url(fake, ACTIVE_PATH, meeting))
    assert answer.status_code == 200
    validate(answer.json(), ACTIVE)
    return answer.json()["data"]["status"]


def livestream(http, fake, livestream_id):
    answer = http.get(url(fake, GET_PATH, livestream=livestream_id))
    assert answer.status_code == 200
    validate(answer.json(), LIVESTREAM)
    return answer.json()["data"]["livestream"]


def instant(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_lifecycle_goes_live_never_or_errored_per_meeting(fake_api, http):
    live, never, errored, fails_live = (new_meeting() for _ in range(4))
    fake_api.configure(
        {
            "lifecycle": {"live_after": 0.2},
            "meetings": {
                never: {"live_after": None},
                errored: {"errored_after": 0.1},  # before live_after: never LIVE
                fails_live: {"errored_after": 0.5},
            },
        }
    )
    for meeting in (live, never, errored, fails_live):
        assert start(http, fake_api, meeting).json()["data"]["status"] == "INVOKED"
    time.sleep(0.3)
    statuses = {m: active_status(http, fake_api, m) for m in (live, never, errored, fails_live)}
    assert statuses == {live: "LIVE", never: "INVOKED", errored: "ERRORED", fails_live: "LIVE"}
    time.sleep(0.3)
    assert active_status(http, fake_api, fails_live) == "ERRORED"
    # An erred livestream stays the meeting's active one until it is stopped.
    assert start(http, fake_api, errored).status_code == 409
    assert http.post(url(fake_api, STOP_PATH, errored)).status_code == 200
    assert start(http, fake_api, errored).status_code == 201


def test_updated_at_is_the_instant_of_the_last_status_change(http):
    with FakeRealtimeKit(token=FAKE_TOKEN, live_after=0.2) as fake:
        meeting = new_meeting()
        stream_id = start(http, fake, meeting).json()["data"]["id"]
        doc = livestream(http, fake, stream_id)
        assert (doc["status"], doc["updated_at"]) == ("INVOKED", doc["created_at"])
        time.sleep(0.3)
        doc = livestream(http, fake, stream_id)
        assert doc["status"] == "LIVE"
        took = instant(doc["updated_at"]) - instant(doc["created_at"])
        assert took == pytest.approx(0.2, abs=2e-3)
        before = time.time()
        http.post(url(fake, STOP_PATH, meeting))
        doc = livestream(http, fake, stream_id)
        assert doc["status"] == "IDLE"
        assert before - 1e-3 <= instant(doc["updated_at"]) <= time.time()


def test_a_livestream_keeps_the_plan_it_was_created_with(fake_api, http):
    first = new_meeting()
    start(http, fake_api, first)
    fake_api.configure({"live_after": 0})
    second = new_meeting()
    start(http, fake_api, second)
    time.sleep(0.05)
    assert active_status(http, fake_api, first) == "INVOKED"
    assert active_status(http, fake_api, second) == "LIVE"


def test_stop_ends_the_livestream_once_and_is_recorded(fake_api, http):
    meeting = new_meeting()
    stream_id = start(http, fake_api, meeting).json()["data"]["id"]
    assert http.post(url(fake_api, STOP_PATH, meeting)).status_code == 200
    none = http.get(url(fake_api, ACTIVE_PATH, meeting))
    assert none.status_code == 404
    validate(none.json(), RTK_FAILURE)
    assert livestream(http, fake_api, stream_id)["status"] == "IDLE"
    assert http.post(url(fake_api, STOP_PATH, meeting)).status_code == 404
    stats = fake_api.stats()
    (stop,) = stats["stops"]
    assert stop == {
        "meeting_id": meeting,
        "livestream_id": stream_id,
        "at": livestream(http, fake_api, stream_id)["updated_at"],
        "foreign": False,
    }
    assert stats["stops_by_livestream"] == {stream_id: 1}
    assert stats["stop_calls"] == {meeting: 2}
    assert stats["statuses"] == {stream_id: "IDLE"}


@pytest.mark.parametrize(
    ("fault", "stopped"),
    [("drop", True), ("drop_before", False), ({"status": 500, "create": True}, True), (503, False)],
)
def test_a_stop_fault_may_stop_first(fake_api, http, fault, stopped):
    meeting = new_meeting()
    start(http, fake_api, meeting)
    fake_api.script("stop", fault)
    with contextlib.suppress(httpx.RemoteProtocolError):
        assert http.post(url(fake_api, STOP_PATH, meeting)).status_code >= 500
    gone = http.get(url(fake_api, ACTIVE_PATH, meeting)).status_code == 404
    assert gone == stopped
    assert len(fake_api.stats()["stops"]) == int(stopped)


def test_end_upstream_by_meeting_or_by_livestream(fake_api, http):
    control = fake_api.control_url
    first, second = new_meeting(), new_meeting()
    first_id = start(http, fake_api, first).json()["data"]["id"]
    second_id = start(http, fake_api, second).json()["data"]["id"]
    ended = http.post(control + "/end", json={"meeting_id": first})
    assert ended.status_code == 200
    assert ended.json()["ok"] is True
    assert ended.json()["livestream"]["id"] == first_id
    assert ended.json()["livestream"]["status"] == "IDLE"
    assert fake_api.end_livestream(livestream_id=second_id)["status"] == "IDLE"
    for meeting, stream_id in ((first, first_id), (second, second_id)):
        assert http.get(url(fake_api, ACTIVE_PATH, meeting)).status_code == 404
        assert livestream(http, fake_api, stream_id)["status"] == "IDLE"
    assert http.post(control + "/end", json={"livestream_id": first_id}).status_code == 404
    assert http.post(control + "/end", json={"meeting_id": new_meeting()}).status_code == 404
    assert http.post(control + "/end", json={}).status_code == 400
    both = {"meeting_id": first, "livestream_id": first_id}
    assert http.post(control + "/end", json=both).status_code == 400
    assert http.post(control + "/end", json={"stream": first_id}).status_code == 400
    stats = fake_api.stats()
    assert [e["livestream_id"] for e in stats["ended_upstream"]] == [first_id, second_id]
    assert stats["stops"] == [] and stats["stops_by_livestream"] == {}  # not the product's stops
    assert start(http, fake_api, first).status_code == 201


def test_a_foreign_livestream_is_active_but_never_ours(fake_api, http):
    control = fake_api.control_url
    meeting = new_meeting()
    answer = http.post(control + "/foreign", json={"meeting_id": meeting, "name": "theirs"})
    assert answer.status_code == 200
    theirs = answer.json()["livestream"]
    assert (theirs["meeting_id"], theirs["name"]) == (meeting, "theirs")
    assert theirs["status"] == "INVOKED"
    assert http.get(url(fake_api, ACTIVE_PATH, meeting)).json()["data"]["id"] == theirs["id"]
    assert start(http, fake_api, meeting).status_code == 409
    assert http.post(control + "/foreign", json={"meeting_id": meeting}).status_code == 409
    assert http.post(control + "/foreign", json={"meeting_id": "nope"}).status_code == 400
    assert http.post(control + "/foreign", json={}).status_code == 400
    assert fake_api.created == {}
    stats = fake_api.stats()
    assert stats["created_total"] == 0 and stats["foreign"] == [theirs["id"]]
    # Stopping it is possible, and shows up as a stop of a foreign stream: what tests look for.
    assert http.post(url(fake_api, STOP_PATH, meeting)).status_code == 200
    (stop,) = fake_api.stats()["stops"]
    assert (stop["livestream_id"], stop["foreign"]) == (theirs["id"], True)


def test_lifecycle_specs_are_checked_before_anything_changes(fake_api, http):
    control = fake_api.control_url
    bad_specs = [
        {"lifecycle": {"live_after": "soon"}},
        {"lifecycle": {"live_after": -1}},
        {"lifecycle": {"errored_after": True}},
        {"lifecycle": {"gone_after": 1}},
        {"lifecycle": 5},
        {"meetings": {"not-a-uuid": {"live_after": 1}}},
        {"meetings": {new_meeting(): {"live_after": "x"}}},
        {"meetings": []},
        {"live_after": 1, "webhooks": {"url": "http://example.com/hook"}},
        {"live_after": 1, "webhook_faults": {"drop": 2}},
    ]
    for spec in bad_specs:
        assert http.post(control + "/configure", json=spec).status_code == 400, spec
    assert fake_api.live_after is None and fake_api.webhooks.config is None
    spec = {"lifecycle": {"live_after": 0.5, "errored_after": None}}
    assert http.post(control + "/configure", json=spec).json() == {"ok": True}
    assert (fake_api.lifecycle.live_after, fake_api.lifecycle.errored_after) == (0.5, None)


# -- webhooks ----------------------------------------------------------------------------------
BODY_KEYS = [
    "event",
    "meetingId",
    "streamId",
    "status",
    "streamKey",
    "ingestServer",
    "playbackUrl",
    "updatedAt",
]


@pytest.fixture
def receiver():
    with WebhookReceiver() as rx:
        yield rx


@pytest.fixture
def hooked(receiver):
    """A fake that sends its webhooks to ``receiver``."""
    with FakeRealtimeKit(token=FAKE_TOKEN, hang_seconds=5.0, webhook_url=receiver.url) as fake:
        yield fake


def by_stream(received):
    out = {}
    for r in received:
        out.setdefault(json.loads(r.body)["streamId"], []).append(r)
    return out


def test_webhooks_announce_every_status_change_signed(receiver, http):
    with FakeRealtimeKit(token=FAKE_TOKEN, live_after=0.2, webhook_url=receiver.url) as fake:
        meeting = new_meeting()
        data = start(http, fake, meeting).json()["data"]
        receiver.wait_for(2)  # INVOKED, then LIVE with nobody polling
        http.post(url(fake, STOP_PATH, meeting))
        got = receiver.wait_for(3)
        doc = livestream(http, fake, data["id"])
        key = public_key(fake)
        stats = fake.stats()["webhooks"]
    bodies = [json.loads(r.body) for r in got]
    assert [b["status"] for b in bodies] == ["INVOKED", "LIVE", "OFFLINE"]
    for received, body in zip(got, bodies, strict=True):
        assert received.path == "/v1/webhooks/realtimekit"
        assert received.headers["content-type"] == "application/json"
        assert received.headers["rtk-webhook-id"] == fake.webhooks.webhook_id
        assert signature_valid(key, received)
        assert received.body == json.dumps(body, separators=(",", ":")).encode()  # compact
        assert list(body) == BODY_KEYS
        assert body["event"] == "livestreaming.statusUpdate"
        assert (body["meetingId"], body["streamId"]) == (meeting, data["id"])
        assert body["streamKey"] == data["stream_key"]  # in clear, as the real payload
        assert body["ingestServer"] == data["ingest_server"]
        assert body["playbackUrl"] == data["playback_url"]
    uuids = [r.headers["rtk-uuid"] for r in got]
    assert len(set(uuids)) == 3 and all(uuid.UUID(u) for u in uuids)
    # updatedAt is the instant of each change, as REST reports it, not the instant of sending.
    assert bodies[0]["updatedAt"] == doc["created_at"]
    assert instant(bodies[1]["updatedAt"]) - instant(doc["created_at"]) == pytest.approx(
        0.2, abs=2e-3
    )
    assert bodies[2]["updatedAt"] == doc["updated_at"]
    assert (stats["events"], stats["sent"], stats["by_answer"]) == (3, 3, {"200": 3})
    assert [(d["uuid"], d["status"], d["answered"]) for d in stats["deliveries"]] == [
        (u, b["status"], 200) for u, b in zip(uuids, bodies, strict=True)
    ]


def test_webhooks_for_errored_ended_and_foreign_streams(hooked, receiver, http):
    errored, foreign = new_meeting(), new_meeting()
    hooked.configure({"meetings": {errored: {"errored_after": 0.1}}})
    ours = start(http, hooked, errored).json()["data"]["id"]
    receiver.wait_for(2)
    hooked.end_livestream(meeting_id=errored)
    theirs = hooked.start_foreign(foreign)["id"]
    streams = by_stream(receiver.wait_for(4))
    statuses = [json.loads(r.body)["status"] for r in streams[ours]]
    assert statuses == ["INVOKED", "ERRORED", "OFFLINE"]
    # Someone else's stream is announced too: the product must ignore what it did not start.
    assert [json.loads(r.body)["status"] for r in streams[theirs]] == ["INVOKED"]


def test_a_slow_receiver_never_slows_the_api(hooked, receiver, http):
    receiver.delay = 0.5
    began = time.monotonic()
    for _ in range(3):
        assert start(http, hooked, new_meeting()).status_code == 201
    assert time.monotonic() - began < 0.45  # not even one delivery's time
    assert hooked.wait_webhooks(10)
    assert len(receiver.received) == 3


def test_webhooks_retry_5xx_but_not_4xx(hooked, receiver, http):
    hooked.configure({"webhooks": {"url": receiver.url, "backoff": 0.05}})
    receiver.answer(503, 500)
    start(http, hooked, new_meeting())
    got = receiver.wait_for(3)
    assert [r.answered for r in got] == [503, 500, 200]
    assert len({r.headers["rtk-uuid"] for r in got}) == 1  # the same event each time
    assert len({r.body for r in got}) == 1
    receiver.answer(400)
    start(http, hooked, new_meeting())
    assert hooked.wait_webhooks(5)
    time.sleep(0.2)  # longer than the backoff: a retry would have come
    assert [r.answered for r in receiver.received] == [503, 500, 200, 400]
    stats = hooked.stats()["webhooks"]
    assert stats["by_answer"] == {"503": 1, "500": 1, "200": 1, "400": 1}
    first, second = stats["deliveries"]
    assert (first["attempts"], first["answered"]) == (3, 200)
    assert (second["attempts"], second["answered"]) == (1, 400)


def test_webhooks_give_up_after_the_retries(fake_api, http):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook = {"url": f"http://127.0.0.1:{port}/hook", "retries": 2, "backoff": 0.01}
    fake_api.configure({"webhooks": hook})
    start(http, fake_api, new_meeting())
    assert fake_api.wait_webhooks(10)
    stats = fake_api.stats()["webhooks"]
    assert stats["by_answer"] == {"error": 3}
    (delivery,) = stats["deliveries"]
    assert (delivery["attempts"], delivery["answered"]) == (3, "error")


def test_scripted_webhook_faults(hooked, receiver, http):
    script = [{"faults": ["drop", "duplicate", "bad_signature", "late", "none"]}]
    hooked.configure({"webhook_faults": {"late_seconds": 0.5, "script": script}})
    ids = [start(http, hooked, new_meeting()).json()["data"]["id"] for _ in range(5)]
    dropped, duplicated, badly_signed, late, clean = ids
    assert hooked.wait_webhooks(10)
    key = public_key(hooked)
    got = receiver.received
    assert [json.loads(r.body)["streamId"] for r in got] == [
        duplicated,
        duplicated,
        badly_signed,
        clean,
        late,  # out of order: it arrives after a later event
    ]
    assert got[0].headers["rtk-uuid"] == got[1].headers["rtk-uuid"]
    assert got[0].body == got[1].body
    assert [signature_valid(key, r) for r in got] == [True, True, False, True, True]
    assert got[4].at - got[3].at >= 0.3
    stats = hooked.stats()["webhooks"]
    assert stats["faults"] == {"drop": 1, "duplicate": 1, "bad_signature": 1, "late": 1}
    drop = next(d for d in stats["deliveries"] if d["streamId"] == dropped)
    assert (drop["faults"], drop["attempts"], drop["answered"]) == (["drop"], 0, None)
    assert [d["copy"] for d in stats["deliveries"] if d["streamId"] == duplicated] == [0, 1]


def test_webhook_fault_scripts_match_meeting_and_status(hooked, receiver, http):
    mine, other = new_meeting(), new_meeting()
    script = [{"meeting_id": mine, "status": "LIVE", "faults": ["drop"]}]
    hooked.configure({"live_after": 0.1, "webhook_faults": {"script": script}})
    other_id = start(http, hooked, other).json()["data"]["id"]
    mine_id = start(http, hooked, mine).json()["data"]["id"]
    time.sleep(0.2)
    for meeting in (mine, other):
        http.post(url(hooked, STOP_PATH, meeting))
    assert hooked.wait_webhooks(10)
    statuses = {
        stream: [json.loads(r.body)["status"] for r in received]
        for stream, received in by_stream(receiver.received).items()
    }
    assert statuses == {
        other_id: ["INVOKED", "LIVE", "OFFLINE"],
        mine_id: ["INVOKED", "OFFLINE"],
    }


def _webhook_run(seed):
    rates = {"drop": 0.2, "duplicate": 0.2, "late": 0.2, "bad_signature": 0.2}
    with (
        WebhookReceiver() as rx,
        FakeRealtimeKit(token=FAKE_TOKEN, webhook_url=rx.url) as fake,
        httpx.Client(headers=AUTH, timeout=5) as http,
    ):
        fake.configure({"webhook_faults": {**rates, "late_seconds": 0.2, "seed": seed}})
        for _ in range(60):
            start(http, fake, new_meeting())
        assert fake.wait_webhooks(20)
        return fake.stats()["webhooks"], list(rx.received), public_key(fake)


def test_random_webhook_faults_follow_their_rates_and_the_seed():
    stats, received, key = _webhook_run(seed=3)
    faults = [d["faults"] for d in stats["deliveries"] if d["copy"] == 0]
    assert faults == [d["faults"] for d in _webhook_run(seed=3)[0]["deliveries"] if d["copy"] == 0]
    assert faults != [d["faults"] for d in _webhook_run(seed=4)[0]["deliveries"] if d["copy"] == 0]
    for kind in ("drop", "duplicate", "late", "bad_signature"):
        assert 4 <= stats["faults"][kind] <= 24, kind
    sent = [d for d in stats["deliveries"] if "drop" not in d["faults"]]
    assert len(received) == len(sent)
    assert sum(not signature_valid(key, r) for r in received) == sum(
        "bad_signature" in d["faults"] for d in sent
    )


@pytest.mark.parametrize(
    "hook",
    [
        "http://example.com/hook",
        "http://192.0.2.1:8080/hook",
        "http://0.0.0.0:8080/hook",
        "https://127.0.0.1/hook",
        "ftp://127.0.0.1/hook",
        "http://user:pw@127.0.0.1/hook",
        "127.0.0.1:8080",
    ],
)
def test_webhooks_go_only_to_loopback(fake_api, hook):
    with pytest.raises(ValueError, match="loopback"):
        fake_api.configure({"webhooks": {"url": hook}})
    with pytest.raises(ValueError, match="loopback"):
        FakeRealtimeKit(webhook_url=hook)
    assert fake_api.webhooks.config is None


@pytest.mark.parametrize(
    ("hook", "kept"),
    [
        ("http://localhost:8080/hook", "http://127.0.0.1:8080/hook"),
        ("http://[::1]:8080/hook?x=1", "http://[::1]:8080/hook?x=1"),
        ("http://127.0.0.2", "http://127.0.0.2/"),
    ],
)
def test_loopback_webhook_urls_are_kept(fake_api, hook, kept):
    fake_api.configure({"webhooks": {"url": hook}})
    assert fake_api.stats()["webhooks"]["url"] == kept


def test_the_public_key_is_served_without_a_token_and_never_recorded(fake_api):
    first, again = public_key(fake_api), public_key(fake_api)
    assert first.public_numbers() == again.public_numbers()
    assert first.key_size == 2048
    with FakeRealtimeKit() as other:
        assert public_key(other).public_numbers() != first.public_numbers()
    assert fake_api.requests == []


def test_reset_forgets_streams_deliveries_and_meeting_plans(hooked, receiver, http):
    meeting = new_meeting()
    hooked.configure(
        {
            "meetings": {meeting: {"live_after": 0}},
            "webhook_faults": {"script": [{"faults": ["drop"] * 5}]},
        }
    )
    start(http, hooked, meeting)
    assert active_status(http, hooked, meeting) == "LIVE"  # both changes made, both dropped
    assert hooked.wait_webhooks(5)
    assert receiver.received == []
    hooked.reset(faults_only=True)  # the webhook script goes, the livestream stays
    http.post(url(hooked, STOP_PATH, meeting))
    (offline,) = receiver.wait_for(1)
    assert json.loads(offline.body)["status"] == "OFFLINE"
    deliveries = hooked.stats()["webhooks"]["deliveries"]
    assert [(d["status"], d["faults"]) for d in deliveries] == [
        ("INVOKED", ["drop"]),
        ("LIVE", ["drop"]),
        ("OFFLINE", []),
    ]
    hooked.reset()
    stats = hooked.stats()
    assert (stats["statuses"], stats["stops"], stats["webhooks"]["deliveries"]) == ({}, [], [])
    start(http, hooked, meeting)
    time.sleep(0.05)
    assert active_status(http, hooked, meeting) == "INVOKED"  # its plan went with the reset
    assert json.loads(receiver.wait_for(2)[1].body)["status"] == "INVOKED"  # the URL stayed


def test_cli_fake_api_sends_webhooks_to_its_webhook_url(receiver):
    args = ["fake-api", "--port", "0", "--token", "tok", "--webhook-url", receiver.url]
    code = "import sys; from worker.cli import main; sys.argv[1:] = sys.argv[1:]; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        base = proc.stdout.readline().strip()
        meeting = new_meeting()
        path = START_PATH.format(account_id=ACCOUNT_ID, app_id=APP_ID, meeting_id=meeting)
        with httpx.Client(headers={"Authorization": "Bearer tok"}, timeout=5) as http:
            assert http.post(base + path, json={}).status_code == 201
        (got,) = receiver.wait_for(1)
        assert json.loads(got.body)["meetingId"] == meeting
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_cli_fake_api_refuses_a_webhook_url_off_loopback():
    result = CliRunner().invoke(cli, ["fake-api", "--webhook-url", "http://example.com/hook"])
    assert result.exit_code == 2
    assert "--webhook-url" in result.output and "loopback" in result.output
