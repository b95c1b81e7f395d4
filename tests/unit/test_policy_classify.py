"""Table tests of the pure answer classification in worker.upstream.policy: no sockets, no clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from worker.upstream.policy import answered_as_asked, classify, classify_exception
from worker.upstream.responses import MAX_RETRY_AFTER, parse_livestream, parse_retry_after

NOW = datetime(2026, 7, 27, 12, 0, 0, tzinfo=UTC)
STARTED = {
    "success": True,
    "data": {
        "id": "7088bba8-f522-49a8-b59b-3cd0e946bbb0",
        "ingest_server": "rtmps://live.cloudflare.com:443/live/",
        "playback_url": "https://example.invalid/manifest/video.m3u8",
        "status": "INVOKED",
        "stream_key": "sk-0123456789abcdef",
    },
}


def j(doc: object) -> bytes:
    return json.dumps(doc).encode()


def v4(message: str, code: int = 1000) -> bytes:
    return j({"success": False, "errors": [{"code": code, "message": message}], "messages": []})


def rtk(message: str, code: int = 404) -> bytes:
    return j({"success": False, "error": {"code": code, "message": message}})


def bare(message: str) -> bytes:
    return j({"message": message, "success": False})


HTML_502 = b"<html><head><title>api.cloudflare.com | 502: Bad gateway</title></head>" + (
    b"<body>" + b"x" * 5000 + b"</body></html>"
)


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "retry_after", "code", "upstream"),
    [
        # started: only a 2xx with success and data.id
        (201, j(STARTED), {}, "started", None, None, None),
        (200, j(STARTED), {}, "started", None, None, None),
        # a 2xx that does not prove a start: the API may or may not have created one
        (201, j({"success": True, "data": {"status": "LIVE"}}), {}, "ambiguous", None, None, None),
        (201, j({"success": True}), {}, "ambiguous", None, None, None),
        (201, j({**STARTED, "success": False}), {}, "ambiguous", None, None, None),
        (201, j({"data": STARTED["data"]}), {}, "ambiguous", None, None, None),
        (201, j({**STARTED, "success": "true"}), {}, "ambiguous", None, None, None),
        (201, b"", {}, "ambiguous", None, None, None),
        (201, b"<html>ok</html>", {}, "ambiguous", None, None, None),
        (201, j(STARTED)[:-5], {}, "ambiguous", None, None, None),
        (204, b"", {}, "ambiguous", None, None, None),
        # retryable: nothing was created
        (429, v4("Slow down", 1015), {"retry-after": "7"}, "retryable", 7.0, "1015", "Slow down"),
        (429, b"", {"Retry-After": "7"}, "retryable", 7.0, None, None),
        (429, b"", {}, "retryable", None, None, None),
        (408, b"", {}, "retryable", None, None, None),
        (425, rtk("Too early", 425), {}, "retryable", None, "425", "Too early"),
        # ambiguous: reconcile with the active livestream first
        (409, rtk("Meeting already has an active livestream", 409), {}, "ambiguous", None, "409",
         "Meeting already has an active livestream"),
        (500, rtk("Internal error", 500), {}, "ambiguous", None, "500", "Internal error"),
        (502, HTML_502, {}, "ambiguous", None, None, "api.cloudflare.com | 502: Bad gateway"),
        (503, b"", {"retry-after": "3"}, "ambiguous", 3.0, None, None),
        (504, b"upstream timed out", {}, "ambiguous", None, None, "upstream timed out"),
        (302, b"", {"location": "https://elsewhere.invalid/"}, "ambiguous", None, None, None),
        # final: the upstream message is kept, v4 envelope first, then RealtimeKit's
        (400, v4("Bad request"), {}, "final", None, "1000", "Bad request"),
        (401, v4("Auth error", 10000), {}, "final", None, "10000", "Auth error"),
        (403, v4("Forbidden", 10001), {}, "final", None, "10001", "Forbidden"),
        (404, rtk("Meeting not found"), {}, "final", None, "404", "Meeting not found"),
        (422, rtk("name must match", 422), {}, "final", None, "422", "name must match"),
        (418, b"", {}, "final", None, None, None),
        (451, b"legal", {}, "final", None, None, "legal"),
        # a bare {"message", "success": false}: no code, the text cleaned and cut like the others
        (400, bare('"video_config.fps" is not allowed'), {}, "final", None, None,
         '"video_config.fps" is not allowed'),
        (422, bare("bad\x1b[31m\n  name"), {}, "final", None, None, "bad?[31m? name"),
        (400, bare("m" * 500), {}, "final", None, None, "m" * 147 + "..."),
        (500, bare("Internal error"), {}, "ambiguous", None, None, "Internal error"),
        (400, bare("  "), {}, "final", None, None, None),
    ],
)  # fmt: skip
def test_classify_table(status, body, headers, kind, retry_after, code, upstream):
    outcome = classify(status, body, headers, now=NOW)
    assert outcome.kind == kind
    assert outcome.status == status
    assert outcome.retry_after == retry_after
    assert outcome.code == code
    assert outcome.upstream_message == upstream
    assert len(outcome.message) < 200
    assert (outcome.livestream is not None) == (kind == "started")


def test_started_carries_every_field_of_the_201():
    outcome = classify(201, j(STARTED), {}, now=NOW)
    ls = outcome.livestream
    assert ls is not None
    assert ls.id == STARTED["data"]["id"]
    assert ls.ingest_server == STARTED["data"]["ingest_server"]
    assert ls.playback_url == STARTED["data"]["playback_url"]
    assert ls.status == "INVOKED"
    assert ls.stream_key is not None and ls.stream_key.get() == "sk-0123456789abcdef"
    assert "sk-0123456789abcdef" not in repr(outcome)


def test_both_envelopes_read_and_v4_wins_when_both_are_there():
    body = j({"errors": [{"code": 1, "message": "from v4"}], "error": {"message": "from rtk"}})
    assert classify(400, body, {}).upstream_message == "from v4"
    several = j({"errors": [{"code": 7, "message": "a"}, {"code": 8, "message": "b"}]})
    outcome = classify(400, several, {})
    assert (outcome.code, outcome.upstream_message) == ("7", "a; b")
    assert classify(400, j({"error": "plain text"}), {}).upstream_message == "plain text"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe\x00garbage",
        b"[" * 70_000,  # deeper than json's recursion limit
        b"{" + b'"a":' * 10_000,
        b"x" * 1_000_000,
        j({"errors": [{"message": "m" * 10_000}]}),
        j({"errors": "not a list", "error": 5}),
        j([1, 2, 3]),
        b"1" * 5000,  # longer than Python's int-from-string limit
    ],
)
def test_odd_error_bodies_give_a_short_message(body):
    outcome = classify(500, body, {})
    assert outcome.kind == "ambiguous"
    assert len(outcome.message) < 200


def test_a_json_error_body_without_text_is_not_echoed():
    # It could hold a stream key (a 4xx with the livestream in it): never copy raw JSON.
    body = j({"success": False, "data": {"id": "x", "stream_key": "sk-leak-me"}})
    outcome = classify(400, body, {})
    assert outcome.upstream_message is None
    assert "sk-leak-me" not in outcome.message


def test_a_stream_key_quoted_in_an_error_message_is_redacted():
    body = j(
        {"errors": [{"message": "duplicate key sk-leak-me"}], "data": {"stream_key": "sk-leak-me"}}
    )
    outcome = classify(409, body, {})
    assert "sk-leak-me" not in outcome.message
    assert "sk-leak-me" not in str(outcome.upstream_message)


def test_no_response_is_ambiguous():
    assert classify(None, b"", {}).kind == "ambiguous"


@pytest.mark.parametrize("status", [409, 500, 503, 201, None])
def test_reads_turn_ambiguous_into_retryable(status):
    body = j({"success": True}) if status == 201 else b""
    assert classify(status, body, {}, idempotent=True).kind == "retryable"


@pytest.mark.parametrize("status", [400, 401, 404, 429])
def test_reads_keep_final_and_retryable(status):
    expected = "retryable" if status == 429 else "final"
    assert classify(status, b"", {}, idempotent=True).kind == expected


def test_acknowledged_and_empty_describe_a_success_without_livestream():
    empty = classify(200, j({"success": True, "data": None}), {})
    assert (empty.acknowledged, empty.empty) == (True, True)
    partial = classify(200, j({"success": True, "data": {"status": "LIVE"}}), {})
    assert (partial.acknowledged, partial.empty) == (True, False)
    refused = classify(200, j({"success": False, "data": {}}), {})
    assert (refused.acknowledged, refused.empty) == (False, False)


REQUEST = httpx.Request("POST", "https://api.invalid/")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectError("refused", request=REQUEST), "retryable"),
        (httpx.ConnectTimeout("slow", request=REQUEST), "retryable"),
        (httpx.PoolTimeout("busy", request=REQUEST), "retryable"),
        (httpx.ReadTimeout("slow", request=REQUEST), "ambiguous"),
        (httpx.WriteTimeout("slow", request=REQUEST), "ambiguous"),
        (httpx.ReadError("reset", request=REQUEST), "ambiguous"),
        (httpx.WriteError("broken pipe", request=REQUEST), "ambiguous"),
        (httpx.RemoteProtocolError("disconnected", request=REQUEST), "ambiguous"),
        (httpx.DecodingError("bad gzip", request=REQUEST), "ambiguous"),
        (httpx.UnsupportedProtocol("ftp://", request=REQUEST), "final"),
        (OSError("odd"), "ambiguous"),
    ],
)
def test_classify_exception(exc, kind):
    assert classify_exception(exc).kind == kind
    read_kind = "retryable" if kind == "ambiguous" else kind
    assert classify_exception(exc, idempotent=True).kind == read_kind


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-1", None),
        ("soon", None),
        ("7s", None),
        ("9" * 400, MAX_RETRY_AFTER),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("Mon, 27 Jul 2026 12:00:07 -0000", 7.0),
        # RFC 9110 5.6.7: recipients must also read the obsolete RFC 850 and asctime forms
        ("Monday, 27-Jul-26 12:00:07 GMT", 7.0),
        ("Mon Jul 27 12:00:07 2026", 7.0),
        ("Mon, 99 Jul 2026 12:00:07 GMT", None),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("data", "ident"),
    [
        ({"id": "a"}, "a"),
        ({"id": 42}, "42"),
        ({"livestream": {"id": "b"}, "session": {}}, "b"),
        ([{"id": "c"}], "c"),
        ([], None),
        ({"id": ""}, None),
        ({"id": True}, None),
        ("a", None),
        (None, None),
    ],
)
def test_parse_livestream_is_lenient(data, ident):
    parsed = parse_livestream(data)
    assert (parsed.id if parsed else None) == ident


def test_parse_livestream_reads_timestamps_and_ignores_junk():
    parsed = parse_livestream(
        {"id": "a", "created_at": "2023-07-15T11:58:08.404Z", "status": 5, "disabled": "false"}
    )
    assert parsed is not None
    assert parsed.created_at == datetime(2023, 7, 15, 11, 58, 8, 404000, tzinfo=UTC)
    assert parsed.status == "5"
    assert parse_livestream({"id": "a", "created_at": "yesterday"}).created_at is None


@pytest.mark.parametrize(
    ("operation", "status", "body", "routine"),
    [
        ("start", 201, j(STARTED), True),
        ("start", 200, j({"success": True, "data": {}}), False),
        ("active", 200, j(STARTED), True),
        ("get", 200, j(STARTED), True),
        ("get", 404, rtk("no such livestream"), False),
        # A stop answers with a message, never a livestream: success: true is all it says.
        ("stop", 200, j({"success": True, "data": {"message": "Stopped livestream"}}), True),
        ("stop", 200, j({"success": False}), False),
        ("stop", 404, rtk("no active livestream"), False),
        ("stop", 503, b"", False),
    ],
)
def test_an_answer_is_routine_when_it_is_what_its_operation_asks_for(
    operation: str, status: int, body: bytes, routine: bool
) -> None:
    outcome = classify(status, body, {}, now=NOW, idempotent=operation != "start")
    assert answered_as_asked(operation, outcome) is routine
