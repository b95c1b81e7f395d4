"""Bad upstream answers, fuzzed, through the start task's whole logic against a real row.

Hypothesis serves status codes, headers and bodies (JSON of the wrong shape, ``success: false``
with 201, truncated JSON, huge bodies, wrong content types, transport errors) through an
``httpx.MockTransport``. A booked row is claimed with ``claims.claim_due`` and run by
``Starter.run`` for up to three rounds, as the dispatcher would hand it out again. Whatever
came back:
- the task never raises, and leaves no row ``starting`` and no attempt without an outcome;
- a row is ``started`` only with a livestream id and a stream key, and exactly the pair one
  of the answers carried (the key decrypts to it); a well-formed 201 always starts;
- the first answer decides the state as docs/DESIGN.md "Retries" says (final 4xx: failed, the
  rest: retrying);
- a row that did not start has a readable ``last_error``: short, one line, no control
  characters, never an upstream stream key or the API token.

Runs on SQLite and PostgreSQL (the ``db_url`` parametrisation of ``settings``).
"""

from __future__ import annotations

import contextlib
import json
import random
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update

from models import CLAIMABLE_STATES, AttemptAction, ScheduledStream, StartAttempt, UpstreamPause
from models.db import db_now, get_sessionmaker
from tests.conftest import examples
from worker.crypto import cipher_for
from worker.settings import Secret, Settings
from worker.start import claims
from worker.start.flow import Starter
from worker.upstream import policy
from worker.upstream.policy import StartStep, classify, classify_exception
from worker.upstream.realtimekit import MAX_BODY, RealtimeKitClient, error_for
from worker.upstream.responses import CallInfo

TOKEN = "fuzz-upstream-token-3f9a"
FAR = datetime(2999, 1, 1, tzinfo=UTC)
ROUNDS = 3

# -- what the fake upstream answers ------------------------------------------------------------
TRANSPORT_ERRORS: dict[str, type[httpx.TransportError]] = {
    "connect": httpx.ConnectError,
    "connect-timeout": httpx.ConnectTimeout,
    "pool-timeout": httpx.PoolTimeout,
    "read-timeout": httpx.ReadTimeout,
    "write-timeout": httpx.WriteTimeout,
    "cut": httpx.RemoteProtocolError,
    "read-error": httpx.ReadError,
}


@dataclass
class Answer:
    """One answer: a transport error, or a status with headers and a body."""

    status: int = 201
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    good: bool = False  # a well-formed 201 with an id and a stream key

    def __repr__(self) -> str:  # a 2 MiB body makes an unreadable failure report
        body = self.body if len(self.body) < 300 else self.body[:300] + b"...(%d)" % len(self.body)
        return f"Answer({self.error or self.status}, {self.headers}, {body!r}, good={self.good})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's reports
        printer.text(repr(self))

    def respond(self, request: httpx.Request) -> httpx.Response:
        if self.error is not None:
            raise TRANSPORT_ERRORS[self.error](f"fuzzed {self.error}", request=request)
        return httpx.Response(self.status, headers=self.headers, content=self.body)


def good_answer(ident: str, key: str, status: str = "INVOKED", *, good: bool = True) -> Answer:
    """A 201 as the contract shows it; ``good=False`` when a field is odd enough that refusing
    it is as right as accepting it (the state is then only required to be a defined one)."""
    data = {
        "id": ident,
        "ingest_server": "rtmps://live.example.invalid:443/live/",
        "playback_url": f"https://example.invalid/{ident}/manifest/video.m3u8",
        "status": status,
        "stream_key": key,
    }
    body = json.dumps({"success": True, "data": data}).encode()
    return Answer(201, {"content-type": "application/json"}, body, good=good)


PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)
ANY_TEXT = st.text(max_size=40)  # control characters, NUL and all
IDS = st.one_of(
    st.uuids().map(str),
    ANY_TEXT,
    st.text(PRINTABLE, min_size=90, max_size=300),  # longer than any id column
    st.integers(),
    st.sampled_from([None, True, False, "", 0, 1.5, [], {}]),
)
KEYS = st.one_of(
    st.binary(min_size=16, max_size=32).map(bytes.hex),
    ANY_TEXT,
    st.text(PRINTABLE, min_size=200, max_size=2000),
    st.sampled_from([None, "", 0, 12345, True, [], {"k": "v"}]),
)
STATUSES = st.one_of(
    st.sampled_from(["INVOKED", "LIVE", "IDLE", "ERRORED"]),
    ANY_TEXT,
    st.text(PRINTABLE, min_size=17, max_size=60),  # longer than livestream_status's column
    st.sampled_from([None, 1, True]),
)
TIMES = st.one_of(
    st.none(),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.sampled_from(["2000-01-01T00:00:00Z", "yesterday", "", 0]),
)
LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT


@st.composite
def livestream_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for name, values in (
        ("id", IDS),
        ("stream_key", KEYS),
        ("status", STATUSES),
        ("ingest_server", ANY_TEXT | st.none()),
        ("playback_url", ANY_TEXT | st.none()),
        ("created_at", TIMES),
        ("meeting_id", st.uuids().map(str) | ANY_TEXT),
    ):
        if draw(st.integers(0, 9)) > 0:  # each field is sometimes missing
            doc[name] = draw(values)
    return doc


JSONISH = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(
        st.sampled_from(["success", "data", "id", "errors", "error", "message", "code",
                         "stream_key", "livestream", "result"]) | ANY_TEXT,
        children,
        max_size=4,
    ),
    max_leaves=12,
)  # fmt: skip
ERROR_ITEM = st.fixed_dictionaries(
    {},
    optional={
        "code": st.integers() | ANY_TEXT | st.text(PRINTABLE, min_size=65, max_size=200),
        "message": ANY_TEXT | st.text(min_size=100, max_size=600) | st.integers(),
    },
)


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """A JSON document shaped like, or almost like, what the API sends."""
    kind = draw(st.sampled_from(["success", "listed", "nested", "v4-error", "rtk-error", "any"]))
    success = draw(st.sampled_from([True, True, True, False, None, "true", 1]))
    if kind == "success":
        return {"success": success, "data": draw(livestream_docs() | JSONISH)}
    if kind == "listed":
        return {"success": success, "data": draw(st.lists(livestream_docs(), max_size=2))}
    if kind == "nested":
        return {"success": success, "data": {"livestream": draw(livestream_docs())}}
    if kind == "v4-error":
        errors = draw(st.lists(ERROR_ITEM, max_size=3) | JSONISH)
        return {"success": False, "errors": errors, "messages": [], "result": None}
    if kind == "rtk-error":
        return {"success": False, "error": draw(ERROR_ITEM | ANY_TEXT | JSONISH)}
    return draw(JSONISH)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["json", "json", "json", "truncated", "huge", "raw", "empty"]))
    if kind == "raw":
        return draw(st.binary(max_size=300))
    if kind == "empty":
        return b""
    text = json.dumps(draw(documents())).encode()
    if kind == "truncated":
        return text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    if kind == "huge":
        pad = draw(st.sampled_from([70_000, 1 << 20, 3 << 20]))
        if draw(st.booleans()):  # valid JSON whose size alone is the problem
            return text[:-1] + b', "pad": "' + b"x" * pad + b'"}' if text.endswith(b"}") else text
        return b"<html>" + b"\x00\xff" * (pad // 2)
    return text


RETRY_AFTER = st.one_of(
    st.sampled_from(["1", "0", "-1", "0.5", "86400", "9" * 40, "soon", "", " 2 ",
                     "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"]),
    st.integers(0, 10**6).map(str),
)  # fmt: skip
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(
            ["application/json", "text/html; charset=UTF-8", "application/xml",
             "text/plain", "application/octet-stream", "application/json; charset=latin-1"]
        ),
        "retry-after": RETRY_AFTER,
        "cf-ray": st.text(PRINTABLE, max_size=150),
    },
)  # fmt: skip
COMMON = [200, 201, 202, 204, 301, 302, 400, 401, 403, 404, 408, 409, 410, 422, 425, 429,
          500, 502, 503, 504]  # fmt: skip


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    pick = draw(st.integers(0, 19))
    if pick == 0:
        return Answer(error=draw(st.sampled_from(sorted(TRANSPORT_ERRORS))))
    if pick == 1:
        return good_answer(str(draw(st.uuids())), draw(st.binary(min_size=32, max_size=32)).hex())
    status = draw(st.sampled_from(COMMON) | st.integers(100, 599))
    return Answer(status, draw(HEADERS), draw(bodies()))


# -- what the rules say the first answer leads to --------------------------------------------------
def first_state(answer: Answer, settings: Settings, deadline: datetime, seed: int) -> set[str]:
    """The states a fresh row may be in after one run on this answer, by the product's own
    decisions (worker.upstream.policy, table-tested against docs/DESIGN.md in tests/unit): the
    answer is classified as the client reads it, and the decision taken at any instant of the
    run."""
    if answer.error is not None:
        exc = TRANSPORT_ERRORS[answer.error]("fuzzed", request=httpx.Request("POST", "/"))
        outcome = classify_exception(exc)
    else:
        body = answer.body[:MAX_BODY]  # the client reads no more
        outcome = classify(answer.status, body, answer.headers)
    if outcome.kind == "started":
        assert outcome.livestream is not None
        if outcome.livestream.stream_key is None:
            # The key is asked for by id: the next answer decides (retried if it is unclear).
            return {"started", "failed", "retrying"}
        state = policy.after_livestream(outcome.livestream).state
        assert state is not None
        if state.value == "started" and outcome.livestream.status == "LIVE":
            return {"live"}  # the start's own answer says LIVE: it is live from the start
        return {state.value}
    error = error_for(outcome, CallInfo(answer.status, None, 0.0), "start")
    backoff = settings.upstream.backoff
    now = datetime.now(UTC)
    decided = set()
    for at in (now, now + timedelta(seconds=60)):  # the run decides a little after this test
        decision = policy.after_error(
            AttemptAction.START, error, attempts=1, now=at, deadline=deadline,
            window=settings.claims.start_window, backoff=backoff, rand=random.Random(seed),
        )  # fmt: skip
        decided.add("retrying" if decision.next is StartStep.RETRY else "failed")
    return decided


def livestreams_in(doc: Any) -> Iterator[tuple[str, str]]:
    """Every (id, stream key) pair anywhere in a JSON document, as text (numbers leniently)."""
    if isinstance(doc, dict):
        ident, key = doc.get("id"), doc.get("stream_key")
        if _textual(ident) and _textual(key):
            yield str(ident), str(key)
        for value in doc.values():
            yield from livestreams_in(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from livestreams_in(value)


def _textual(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def served_livestreams(served: list[Answer]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for answer in served:
        with contextlib.suppress(ValueError, RecursionError):
            found |= set(livestreams_in(json.loads(answer.body)))
    return found


def served_keys(served: list[Answer]) -> set[str]:
    return {key for _, key in served_livestreams(served) if len(key) >= 8}


def readable(text: str | None) -> bool:
    return (
        text is not None
        and 0 < len(text.strip()) <= 1000
        and not any(unicodedata.category(ch) == "Cc" for ch in text)
    )


# -- the harness ---------------------------------------------------------------------------------
class Upstream:
    """Serves the answers in order, one per request (then 503s), and remembers what it served."""

    def __init__(self, answers: list[Answer]) -> None:
        self.pending = list(answers)
        self.served: list[Answer] = []
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        answer = self.pending.pop(0) if self.pending else Answer(503, {}, b"")
        self.served.append(answer)
        self.requests.append((request.method, request.url.path))
        return answer.respond(request)


def _quiet_leftovers(url: str) -> None:
    """Earlier examples share the database: park their rows and forget their 429 pauses."""
    with get_sessionmaker(url).begin() as s:
        s.execute(
            update(ScheduledStream)
            .where(ScheduledStream.state.in_([c.value for c in CLAIMABLE_STATES]))
            .values(due_at=FAR)
        )
        # A 429 pauses every start for the token (by design); the fuzz wants each round to
        # reach the transport, so the pause an earlier round wrote is lifted here.
        s.execute(delete(UpstreamPause))


def _claim(url: str, stream_id: uuid.UUID) -> claims.Claim | None:
    """Claim the booking now, whenever it is due: its retries need not be waited for."""
    with get_sessionmaker(url).begin() as s:
        now = db_now(s)
        s.execute(
            update(ScheduledStream)
            .where(ScheduledStream.id == stream_id, ScheduledStream.due_at > now)
            .values(due_at=now)
        )
        got = claims.claim_due(s, now, lookahead=0, lease=60, batch=1)
    return got[0] if got else None


def _row(url: str, stream_id: uuid.UUID) -> tuple[ScheduledStream, list[StartAttempt]]:
    with get_sessionmaker(url)() as s:
        row = s.get(ScheduledStream, stream_id)
        assert row is not None
        tried = list(
            s.scalars(
                select(StartAttempt)
                .where(StartAttempt.stream_id == stream_id)
                .order_by(StartAttempt.number)
            )
        )
        return row, tried


FUZZ = hsettings(
    max_examples=examples(100),
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)

# Shapes found or worth pinning; each is tried on every run.
LONG_ID = good_answer("x" * 150, "k" * 64, good=False)
LONG_STATUS = good_answer(str(uuid.UUID(int=7)), "k" * 64, status="S" * 40, good=False)
NO_KEY = Answer(201, {}, json.dumps({"success": True, "data": {"id": "ls-1"}}).encode())
NUL_ID = good_answer("ls\x00-1", "k" * 64, good=False)
ESCAPE_ID_NO_KEY = Answer(
    201, {}, json.dumps({"success": True, "data": {"id": "ls-\x1b[2J"}}).encode()
)
NUL_MESSAGE = Answer(
    400, {}, json.dumps({"success": False, "error": {"message": "a\x00b"}}).encode()
)
ESCAPE_MESSAGE = Answer(
    500, {}, json.dumps({"success": False, "errors": [{"message": "\x1b[2Jgone"}]}).encode()
)
LONG_CODE = Answer(
    422, {}, json.dumps({"success": False, "errors": [{"code": "c" * 80, "message": "m"}]}).encode()
)
LONG_RAY = Answer(503, {"cf-ray": "r" * 150}, b"")
RAW_NUL = Answer(502, {"content-type": "text/html"}, b"<html>\x00\xff bad gateway")
KEY = "5ec7e7" * 8
HUGE_WITH_KEY = Answer(
    400,
    {},
    json.dumps(
        {"success": True, "data": {"id": "ls-1", "stream_key": KEY}, "pad": "x" * 70_000}
    ).encode(),
)
OTHER_LIVESTREAM = Answer(
    200,
    {},
    json.dumps(
        {"success": True, "data": {"livestream": {"id": "ls-2", "stream_key": KEY}}}
    ).encode(),
)


@pytest.mark.postgres
@FUZZ
@given(script=st.lists(answers(), min_size=1, max_size=4), seed=st.integers(0, 2**32))
@example(script=[LONG_ID], seed=0)
@example(script=[LONG_STATUS], seed=0)
@example(script=[NO_KEY], seed=0)
@example(script=[NUL_ID], seed=0)
@example(script=[ESCAPE_ID_NO_KEY, Answer(404, {}, b"")], seed=0)
@example(script=[Answer(error="cut"), NO_KEY], seed=0)
@example(script=[NUL_MESSAGE], seed=0)
@example(script=[ESCAPE_MESSAGE], seed=0)
@example(script=[LONG_CODE], seed=0)
@example(script=[LONG_RAY], seed=0)
@example(script=[RAW_NUL], seed=0)
@example(script=[HUGE_WITH_KEY], seed=0)
@example(script=[NO_KEY, OTHER_LIVESTREAM], seed=0)
def test_any_answer_ends_in_a_defined_state(settings, book, script: list[Answer], seed: int):
    url = settings.database_url
    _quiet_leftovers(url)
    stream = book(at=datetime.now(UTC) + timedelta(hours=1))
    upstream = Upstream(script)
    client = RealtimeKitClient(
        base_url="https://api.invalid/client/v4",
        token=Secret(TOKEN),
        transport=httpx.MockTransport(upstream),
    )
    starter = Starter(
        get_sessionmaker(url), settings, client, owner=uuid.uuid4(), rand=random.Random(seed)
    )
    try:
        for number in range(ROUNDS):
            claim = _claim(url, stream.id)
            if claim is None:
                break  # terminal: nothing to hand out again
            assert claim.row_id == stream.id
            word = starter.run(claim.row_id, claim.token)  # must not raise
            assert isinstance(word, str)
            row, tried = _row(url, stream.id)
            assert row.state != "starting", f"left starting after {word!r}"
            assert all(a.outcome is not None for a in tried), [a.outcome for a in tried]
            if number == 0:
                expected = first_state(upstream.served[0], settings, stream.start_deadline, seed)
                assert row.state in expected, (row.state, row.last_error)
            with get_sessionmaker(url).begin() as s:
                s.execute(delete(UpstreamPause))
    finally:
        client.close()

    row, tried = _row(url, stream.id)
    assert row.state in ("started", "live", "retrying", "failed")
    assert row.claim_token is None and row.lease_expires_at is None
    if row.state in ("started", "live"):
        assert row.livestream_id, "started without a livestream id"
        assert row.stream_key_ciphertext, f"started {row.livestream_id!r} without a stream key"
        key = cipher_for(settings).decrypt(row.stream_key_ciphertext).get()
        assert (row.livestream_id, key) in served_livestreams(upstream.served)
        assert len(key) < 8 or key not in row.stream_key_ciphertext
        assert row.last_error is None
    else:
        assert readable(row.last_error), f"unreadable last_error: {row.last_error!r}"
        for secret in [TOKEN, *served_keys(upstream.served)]:
            assert secret not in row.last_error
            assert all(secret not in (a.error_message or "") for a in tried)
