"""The RealtimeKit client over real sockets against the fake, plus MockTransport fuzzing.

Timeouts are short (tests.fake_api.SHORT_TIMEOUT) so the hang cases take half a second.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import worker.upstream.realtimekit as rtk
from tests.conftest import examples
from tests.fake_api import ACCOUNT_ID, APP_ID, new_meeting
from worker.errors import AmbiguousError, FinalError, RetryableError, UpstreamError
from worker.settings import Secret, Settings, Timeouts, Upstream
from worker.upstream.realtimekit import RealtimeKitClient


def start(client, meeting, **kw):
    return client.start_livestream(ACCOUNT_ID, APP_ID, meeting, **kw)


def test_201_is_started_with_all_five_fields_and_call_info(fake_api, rtk_client, meeting_id):
    ls = start(rtk_client(), meeting_id, name="team-sync", width=1280, height=720)
    (created,) = fake_api.created[meeting_id]
    assert ls.id == created.id
    assert ls.stream_key is not None and ls.stream_key.get() == created.stream_key
    assert ls.ingest_server and ls.ingest_server.startswith("rtmps://")
    assert ls.playback_url and ls.playback_url.startswith("https://")
    assert ls.status == "INVOKED"
    assert ls.call is not None and ls.call.status == 201
    assert ls.call.ray_id and ls.call.ray_id.endswith("-FAKE")
    assert 0 < ls.call.duration < 5
    (request,) = fake_api.requests
    assert request.headers["user-agent"] == "livestream-scheduler/0.1.0"
    assert "authorization" not in request.headers


def test_reads_and_stop_follow_the_started_livestream(fake_api, rtk_client, meeting_id):
    client = rtk_client()
    assert client.get_active_livestream(ACCOUNT_ID, APP_ID, meeting_id) is None
    ls = start(client, meeting_id)
    active = client.get_active_livestream(ACCOUNT_ID, APP_ID, meeting_id)
    assert active is not None and active.id == ls.id and active.meeting_id == meeting_id
    assert client.get_livestream(ACCOUNT_ID, APP_ID, ls.id).id == ls.id
    client.stop_active_livestream(ACCOUNT_ID, APP_ID, meeting_id)
    assert client.get_active_livestream(ACCOUNT_ID, APP_ID, meeting_id) is None
    assert client.get_livestream(ACCOUNT_ID, APP_ID, ls.id).status == "IDLE"
    with pytest.raises(FinalError) as stopped_twice:
        client.stop_active_livestream(ACCOUNT_ID, APP_ID, meeting_id)
    assert stopped_twice.value.status == 404
    with pytest.raises(FinalError):
        client.get_livestream(ACCOUNT_ID, APP_ID, "no-such-livestream")


def test_429_retry_after_seconds(fake_api, rtk_client, meeting_id):
    fake_api.script("start", {"status": 429, "retry_after": "7"})
    with pytest.raises(RetryableError) as caught:
        start(rtk_client(), meeting_id)
    assert caught.value.retry_after == 7.0
    assert caught.value.status == 429
    assert fake_api.created == {}


def test_429_retry_after_http_date(fake_api, rtk_client, meeting_id):
    when = datetime.now(UTC) + timedelta(seconds=30)
    fake_api.script("start", {"status": 429, "retry_after": format_datetime(when, usegmt=True)})
    with pytest.raises(RetryableError) as caught:
        start(rtk_client(), meeting_id)
    # HTTP-dates have whole seconds: allow for that and a slow machine.
    assert caught.value.retry_after is not None and 27 <= caught.value.retry_after <= 30


def test_rate_limit_per_token_answers_429_for_the_rest_of_the_window(fake_api, rtk_client):
    fake_api.set_rate_limit(2, 30)
    client = rtk_client()
    start(client, new_meeting())
    start(client, new_meeting())
    with pytest.raises(RetryableError) as caught:
        start(client, new_meeting())
    assert caught.value.retry_after is not None and 28 <= caught.value.retry_after <= 30
    assert caught.value.code == "1015"


def test_create_then_hang_is_ambiguous_and_the_livestream_is_found(
    fake_api, rtk_client, meeting_id
):
    fake_api.script("start", "hang", meeting_id=meeting_id)
    client = rtk_client()
    began = time.monotonic()
    with pytest.raises(AmbiguousError) as caught:
        start(client, meeting_id)
    assert time.monotonic() - began < 3  # the client's read timeout, not the fake's hang
    assert caught.value.status is None
    assert "ReadTimeout" in str(caught.value)
    active = client.get_active_livestream(ACCOUNT_ID, APP_ID, meeting_id)
    (created,) = fake_api.created[meeting_id]
    assert active is not None and active.id == created.id


def test_create_then_drop_is_ambiguous(fake_api, rtk_client, meeting_id):
    fake_api.script("start", "drop")
    client = rtk_client()
    with pytest.raises(AmbiguousError):
        start(client, meeting_id)
    assert len(fake_api.created[meeting_id]) == 1
    # The pooled client recovers: the next call on a fresh connection works.
    assert client.get_active_livestream(ACCOUNT_ID, APP_ID, meeting_id) is not None


def test_409_when_already_streaming_is_ambiguous_then_adopted(fake_api, rtk_client, meeting_id):
    client = rtk_client()
    first = start(client, meeting_id)
    with pytest.raises(AmbiguousError) as caught:
        start(client, meeting_id)
    assert caught.value.status == 409
    assert client.get_active_livestream(ACCOUNT_ID, APP_ID, meeting_id).id == first.id
    assert len(fake_api.created[meeting_id]) == 1


def test_html_502_is_ambiguous_then_retried_with_a_short_message(fake_api, rtk_client, meeting_id):
    fake_api.script("start", "html502")
    client = rtk_client()
    with pytest.raises(AmbiguousError) as caught:
        start(client, meeting_id)
    assert caught.value.status == 502
    assert len(str(caught.value)) < 200
    assert "<" not in str(caught.value)
    assert "502" in str(caught.value)
    # Reconcile, find nothing, retry: the second start goes through.
    assert client.get_active_livestream(ACCOUNT_ID, APP_ID, meeting_id) is None
    assert start(client, meeting_id).id == fake_api.created[meeting_id][0].id


@pytest.mark.parametrize("status", [500, 503, 504])
def test_5xx_is_ambiguous(fake_api, rtk_client, meeting_id, status):
    fake_api.script("start", status)
    with pytest.raises(AmbiguousError) as caught:
        start(rtk_client(), meeting_id)
    assert caught.value.status == status


def test_401_is_final_with_the_upstream_message(rtk_client, meeting_id):
    with pytest.raises(FinalError) as caught:
        start(rtk_client(token="wrong-token"), meeting_id)
    assert caught.value.status == 401
    assert caught.value.upstream_message == "Authentication error"
    assert caught.value.code == "10000"


def test_404_is_final_with_the_upstream_message(rtk_client):
    with pytest.raises(FinalError) as caught:
        start(rtk_client(), "not-a-uuid")
    assert caught.value.status == 404
    assert "object identifier is invalid" in str(caught.value.upstream_message)


def test_422_is_final_with_the_upstream_message(fake_api, rtk_client, meeting_id):
    with pytest.raises(FinalError) as caught:
        start(rtk_client(), meeting_id, name="has spaces")
    assert caught.value.status == 422
    assert caught.value.upstream_message == "name must match ^[a-zA-Z0-9-_]*$"
    assert fake_api.created == {}


def test_reads_failing_transiently_are_retryable(fake_api, rtk_client, meeting_id):
    fake_api.script("active", 503, "drop_before")
    client = rtk_client()
    for _ in range(2):
        with pytest.raises(RetryableError):
            client.get_active_livestream(ACCOUNT_ID, APP_ID, meeting_id)
    assert client.get_active_livestream(ACCOUNT_ID, APP_ID, meeting_id) is None


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_retryable(rtk_client, meeting_id):
    client = rtk_client(base_url=f"http://127.0.0.1:{_refused_port()}/client/v4")
    with pytest.raises(RetryableError) as caught:
        start(client, meeting_id)
    assert caught.value.status is None
    assert "ConnectError" in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_a_body_sent_a_byte_at_a_time_ends_the_call_at_its_limit(meeting_id):
    """Each read gets a byte within the read timeout, so only the call's own limit ends it:
    without it a start could hold its claim for as long as the server cared to drip."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def drip() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
                         b"content-length: 100000\r\n\r\n{")  # fmt: skip
            while not stop.is_set():
                try:
                    conn.sendall(b" ")
                except OSError:
                    return
                time.sleep(0.1)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    timeout = httpx.Timeout(connect=0.2, read=0.5, write=0.2, pool=0.1)  # a limit of 1 s
    client = RealtimeKitClient(
        base_url=f"http://127.0.0.1:{port}/client/v4", token=Secret("t"), timeout=timeout
    )
    began = time.monotonic()
    try:
        with pytest.raises(AmbiguousError) as caught:
            start(client, meeting_id)
    finally:
        stop.set()
        client.close()
        server.close()
    took = time.monotonic() - began
    assert client.call_limit == pytest.approx(1.0)
    assert 1.0 <= took < 1.0 + 0.5 + 1.0  # the limit, one read, and room for a slow machine
    assert caught.value.status == 201  # the status came; the body that would prove it did not


def test_a_huge_body_is_read_only_in_part():
    sent = 0

    def endless():
        nonlocal sent
        while sent < 50 * 1024 * 1024:
            sent += 65536
            yield b"<html>" + b"x" * 65530

    def handler(request):
        return httpx.Response(503, content=endless())

    with (
        RealtimeKitClient(
            base_url="https://api.invalid/client/v4",
            token=Secret("t"),
            transport=httpx.MockTransport(handler),
        ) as client,
        pytest.raises(AmbiguousError) as caught,
    ):
        start(client, new_meeting())
    assert sent <= 2 * rtk.MAX_BODY
    assert len(str(caught.value)) < 200


# -- secrets never leak ------------------------------------------------------------------
TOKEN = "tok-KNOWN-SECRET-6d1f0e"
STREAM_KEY = "sk-KNOWN-STREAM-KEY-93a7"


def _texts(obj):
    """Every text a log line or traceback could show for ``obj`` and its causes."""
    seen = [str(obj), repr(obj)]
    cause = getattr(obj, "__cause__", None) or getattr(obj, "__context__", None)
    if cause is not None:
        seen += [str(cause), repr(cause)]
    if isinstance(obj, UpstreamError):
        seen += [str(obj.upstream_message), str(obj.code), str(obj.ray_id)]
    return seen


def test_token_and_stream_key_never_show(caplog):
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log at DEBUG too

    def handler(request):
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        kind = request.url.path.rsplit("/", 1)[-1]
        if kind == "livestreams":
            data = {"id": "ls-1", "stream_key": STREAM_KEY, "status": "INVOKED"}
            return httpx.Response(201, json={"success": True, "data": data})
        if kind == "stop":  # an error page that echoes the token and the key
            text = f"bad token {TOKEN} for key {STREAM_KEY}"
            return httpx.Response(
                403, json={"errors": [{"message": text}], "data": {"stream_key": STREAM_KEY}}
            )
        if kind == "active-livestream":
            return httpx.Response(500, text=f"<title>{TOKEN}</title>")
        raise httpx.ReadTimeout("slow", request=request)

    seen = []
    with RealtimeKitClient(
        base_url="https://api.invalid/client/v4",
        token=Secret(TOKEN),
        transport=httpx.MockTransport(handler),
    ) as client:
        seen += _texts(client)
        ls = start(client, new_meeting())
        assert ls.stream_key is not None and ls.stream_key.get() == STREAM_KEY
        seen += _texts(ls)
        for call in (
            lambda: client.stop_active_livestream(ACCOUNT_ID, APP_ID, new_meeting()),
            lambda: client.get_active_livestream(ACCOUNT_ID, APP_ID, new_meeting()),
            lambda: client.get_livestream(ACCOUNT_ID, APP_ID, "ls-1"),
        ):
            with pytest.raises(UpstreamError) as caught:
                call()
            seen += _texts(caught.value)
    assert caplog.records, "the client logs its calls"
    seen.append(caplog.text)
    for record in caplog.records:
        seen += [record.getMessage(), repr(record.__dict__)]
    for text in seen:
        assert TOKEN not in text
        assert STREAM_KEY not in text


def test_token_and_stream_key_never_show_over_real_sockets(fake_api, caplog):
    caplog.set_level(logging.DEBUG)
    fake_api.token = TOKEN
    with RealtimeKitClient(
        base_url=fake_api.base_url, token=Secret(TOKEN), timeout=httpx.Timeout(0.5)
    ) as client:
        meeting = new_meeting()
        ls = start(client, meeting)
        key = fake_api.created[meeting][0].stream_key
        fake_api.script("start", "hang", "html502", 401)
        errors = []
        for _ in range(3):
            with pytest.raises(UpstreamError) as caught:
                start(client, new_meeting())
            errors.append(caught.value)
    texts = _texts(ls) + [caplog.text] + [t for e in errors for t in _texts(e)]
    for text in texts:
        assert TOKEN not in text and key not in text


# -- fuzzing: only our own error types come out ------------------------------------------
def _nested(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # A named function, not a lambda: Hypothesis reads an `extend` lambda's source to check that
    # it recurses, and misreads one that spans lines (a deprecation warning, an error here).
    return st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["success", "data", "id", "errors", "error", "message", "code",
                         "stream_key", "livestream", "status", "created_at"]) | st.text(max_size=5),
        children,
        max_size=5,
    )  # fmt: skip


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    _nested,
    max_leaves=20,
)
BODIES = (
    st.binary(max_size=2000)
    | JSONISH.map(lambda doc: __import__("json").dumps(doc).encode())
    | st.just(b"[" * 70_000)
)
HEADERS = st.dictionaries(
    st.sampled_from(["retry-after", "content-type", "cf-ray", "content-encoding"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.integers(min_value=100, max_value=599),
    body=BODIES,
    headers=HEADERS,
    op=st.sampled_from(["start", "active", "stop", "get"]),
)
def test_fuzzed_responses_raise_only_upstream_errors(status, body, headers, op):
    def handler(request):
        return httpx.Response(status, content=body, headers=headers)

    with RealtimeKitClient(
        base_url="https://api.invalid/client/v4",
        token=Secret("t"),
        transport=httpx.MockTransport(handler),
    ) as client:
        try:
            if op == "start":
                result = start(client, "m")
                assert result.id
            elif op == "active":
                client.get_active_livestream(ACCOUNT_ID, APP_ID, "m")
            elif op == "stop":
                client.stop_active_livestream(ACCOUNT_ID, APP_ID, "m")
            else:
                assert client.get_livestream(ACCOUNT_ID, APP_ID, "m").id
        except UpstreamError as exc:
            assert len(str(exc)) < 200
            if isinstance(exc, RetryableError) and exc.retry_after is not None:
                assert 0 <= exc.retry_after <= 86_400
            if op == "start" and 200 <= status < 300:
                assert not isinstance(exc, RetryableError | FinalError)


def test_from_settings_uses_the_configured_timeouts():
    settings_ = Settings(
        upstream=Upstream(api_token=Secret("t"), timeouts=Timeouts(connect=1.5, read=2.5))
    )
    with RealtimeKitClient.from_settings(settings_) as client:
        timeout = client._http.timeout
    assert (timeout.connect, timeout.read) == (1.5, 2.5)
    with pytest.raises(Exception, match="CLOUDFLARE_API_TOKEN"):
        RealtimeKitClient.from_settings(Settings())
