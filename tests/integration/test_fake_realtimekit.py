"""The fake RealtimeKit server: contract fidelity, fault injection, records, load.

Driven with plain httpx so these tests check the fake, not our client.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

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
from worker.fake_realtimekit import FakeRealtimeKit, parse_fault

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
        fake.set_latency(1.0)
        limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
        with httpx.Client(headers=AUTH, timeout=10, limits=limits) as http:
            began = time.monotonic()
            with ThreadPoolExecutor(200) as pool:
                codes = list(
                    pool.map(lambda _: start(http, fake, new_meeting()).status_code, range(200))
                )
            elapsed = time.monotonic() - began
        stats = fake.stats()
    assert codes == [201] * 200
    assert stats["max_in_flight"] >= 150  # they really were held at the same time ...
    assert elapsed < 8  # ... instead of one after another (200 s)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.com"])
def test_binds_only_to_loopback(host):
    with pytest.raises(ValueError, match="loopback"):
        FakeRealtimeKit(host=host)


def test_listens_on_loopback():
    with FakeRealtimeKit() as fake:
        assert fake._server.server_address[0] == "127.0.0.1"
        assert fake.base_url == f"http://127.0.0.1:{fake.port}/client/v4"


def test_run_fake_api_prints_its_base_url_and_serves():
    code = "from worker.fake_realtimekit import run_fake_api; run_fake_api('127.0.0.1', 0, 'tok')"
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
