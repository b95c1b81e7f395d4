"""The start task's decisions, run in-process against the fake API over real sockets."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from models import ScheduledStream, StartAttempt, StreamState, UpstreamPause
from models.db import db_now, get_sessionmaker
from tests.conftest import make_due
from worker.crypto import cipher_for
from worker.errors import NotDueYet
from worker.settings import Secret
from worker.start import claims
from worker.start.flow import Starter
from worker.upstream.realtimekit import RealtimeKitClient

S = ScheduledStream


@pytest.fixture
def starter(settings, fake_api, rtk_client) -> Starter:
    return Starter(
        get_sessionmaker(settings.database_url), settings, rtk_client(), owner=uuid.uuid4()
    )


def run_with_answers(
    settings, stream_id: uuid.UUID, handler: Callable[[httpx.Request], httpx.Response]
) -> str:
    """Claim the booking and run its start task against answers from ``handler``."""
    client = RealtimeKitClient(
        base_url="http://127.0.0.1:9/client/v4",
        token=Secret("t"),
        transport=httpx.MockTransport(handler),
    )
    starter = Starter(get_sessionmaker(settings.database_url), settings, client, owner=uuid.uuid4())
    return starter.run(stream_id, claim(settings, stream_id))


def claim(settings, stream_id: uuid.UUID) -> uuid.UUID:
    """Make the booking due now and claim it, as a dispatcher tick would."""
    make_due(settings.database_url, stream_id)
    with get_sessionmaker(settings.database_url).begin() as s:
        (got,) = claims.claim_due(s, db_now(s), lookahead=0, lease=60, batch=1)
    return got.token


def row(settings, stream_id) -> ScheduledStream:
    with get_sessionmaker(settings.database_url)() as s:
        return s.get(S, stream_id)


def outcomes(settings, stream_id) -> list[tuple[str, str | None]]:
    with get_sessionmaker(settings.database_url)() as s:
        query = select(StartAttempt).where(StartAttempt.stream_id == stream_id)
        return [(a.action, a.outcome) for a in s.scalars(query.order_by(StartAttempt.number))]


def test_started_row_holds_the_created_livestream(settings, starter, book, fake_api) -> None:
    stream = book(name="room-1", width=640, height=360)
    assert starter.run(stream.id, claim(settings, stream.id)) == "started"
    (created,) = fake_api.created[str(stream.meeting_id)]
    got = row(settings, stream.id)
    assert got.state == StreamState.STARTED and got.livestream_id == created.id
    assert cipher_for(settings).decrypt(got.stream_key_ciphertext).get() == created.stream_key


def test_a_stale_or_replayed_claim_does_nothing(settings, starter, book, fake_api) -> None:
    stream = book()
    token = claim(settings, stream.id)
    assert starter.run(stream.id, uuid.uuid4()) == "stale"
    assert starter.run(stream.id, token) == "started"
    assert starter.run(stream.id, token) == "stale"
    assert fake_api.starts_received == 1


def test_a_429_pauses_every_start_for_the_token(settings, starter, book, fake_api) -> None:
    first, second = book(), book()
    fake_api.script("start", {"status": 429, "retry_after": "30"}, meeting_id=str(first.meeting_id))
    assert starter.run(first.id, claim(settings, first.id)) == "retrying"
    assert starter.run(second.id, claim(settings, second.id)) == "paused"
    assert [r.meeting_id for r in fake_api.requests] == [str(first.meeting_id)]
    with get_sessionmaker(settings.database_url)() as s:
        (pause,) = s.scalars(select(UpstreamPause)).all()
        assert s.get(S, first.id).due_at >= pause.paused_until - timedelta(seconds=1)
        # The other waits without losing its place in the queue: the dispatcher claims
        # nothing until the pause ends, then the oldest due first.
        assert s.get(S, second.id).due_at <= db_now(s)
        assert "waiting for the API rate limit" in s.get(S, second.id).last_error
        for stream in (first, second):
            assert s.get(S, stream.id).state == StreamState.RETRYING


def test_an_answer_without_stream_key_is_completed_by_id(settings, book) -> None:
    stream = book()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, json={"success": True, "data": {"id": "ls-1"}})
        assert request.url.path.endswith("/livestreams/ls-1")
        return httpx.Response(
            200, json={"success": True, "data": {"id": "ls-1", "stream_key": "sk-from-get-0123"}}
        )

    run_with_answers(settings, stream.id, handler)
    got = row(settings, stream.id)
    assert got.state == StreamState.STARTED
    assert cipher_for(settings).decrypt(got.stream_key_ciphertext).get() == "sk-from-get-0123"


def test_no_stream_key_anywhere_is_failed_with_the_livestream_kept(settings, book) -> None:
    stream = book()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, json={"success": True, "data": {"id": "ls-2"}})
        return httpx.Response(200, json={"success": True, "data": {"id": "ls-2"}})

    run_with_answers(settings, stream.id, handler)
    got = row(settings, stream.id)
    assert got.state == StreamState.FAILED and got.livestream_id == "ls-2"
    assert "no stream key" in got.last_error and got.started_at is None
    # The key was asked for by id, as a call of its own: the answer had none.
    assert outcomes(settings, stream.id) == [("start", "started"), ("fetch_key", "fatal")]


def test_unclear_past_the_deadline_is_reconciled_before_failing(
    settings, starter, book, fake_api
) -> None:
    stream = book()
    fake_api.script("start", "drop_before", meeting_id=str(stream.meeting_id))  # nothing created
    assert starter.run(stream.id, claim(settings, stream.id)) == "retrying"
    assert outcomes(settings, stream.id) == [("start", "ambiguous")]
    with get_sessionmaker(settings.database_url).begin() as s:
        past = db_now(s) - timedelta(seconds=1)
        s.execute(update(S).where(S.id == stream.id).values(start_deadline=past, due_at=past))
    with get_sessionmaker(settings.database_url).begin() as s:
        (again,) = claims.claim_due(s, db_now(s), lookahead=0, lease=60, batch=1)
    assert starter.run(stream.id, again.token) == "failed"
    got = row(settings, stream.id)
    assert "created no livestream" in got.last_error
    assert outcomes(settings, stream.id) == [("start", "ambiguous"), ("reconcile", "absent")]
    assert fake_api.starts_received == 1


def test_another_callers_older_livestream_is_not_adopted(settings, starter, book, fake_api) -> None:
    stream = book()
    meeting = str(stream.meeting_id)
    with RealtimeKitClient(base_url=fake_api.base_url, token=Secret("fake-token")) as other:
        other.start_livestream(
            settings.upstream.account_id,
            settings.upstream.app_id,
            meeting,
            name=None,
            width=None,
            height=None,
        )
    fake_api.script("start", 503, meeting_id=meeting)
    token = claim(settings, stream.id)
    with get_sessionmaker(settings.database_url).begin() as s:
        # Our first unclear call, made long after the other caller's livestream began.
        s.add(
            StartAttempt(
                stream_id=stream.id,
                number=0,
                action="start",
                claim_token=token,
                sent_at=db_now(s) + timedelta(hours=1),
                outcome="ambiguous",
            )
        )
    assert starter.run(stream.id, token) == "failed"
    got = row(settings, stream.id)
    assert "not adopting another caller's livestream" in got.last_error
    assert len(fake_api.created[meeting]) == 1


def test_another_callers_later_livestream_under_another_name_is_not_adopted(
    settings, starter, book, fake_api
) -> None:
    """Created after our unclear call, so the instant cannot tell; the name can."""
    stream = book(name="town-hall")
    meeting = str(stream.meeting_id)
    token = claim(settings, stream.id)
    with get_sessionmaker(settings.database_url).begin() as s:
        # Our first unclear call, an hour before the other caller's livestream began.
        s.add(
            StartAttempt(
                stream_id=stream.id,
                number=0,
                action="start",
                claim_token=token,
                sent_at=db_now(s) - timedelta(hours=1),
                outcome="ambiguous",
            )
        )
    theirs = fake_api.start_foreign(meeting, "other-show")["id"]
    assert starter.run(stream.id, token) == "failed"
    got = row(settings, stream.id)
    assert got.livestream_id is None
    assert f"livestream {theirs}, named 'other-show', not 'town-hall'" in got.last_error
    assert fake_api.created.get(meeting, []) == []  # and no start of ours was sent
    assert outcomes(settings, stream.id)[-1] == ("reconcile", "fatal")


def test_a_run_before_its_instant_by_the_database_clock_does_nothing(
    settings, starter, book, fake_api
) -> None:
    """A worker whose clock runs 30 s ahead gets its ETA 30 s early: no call, nothing changed."""
    stream = book()
    make_due(settings.database_url, stream.id, at=timedelta(seconds=30))
    with get_sessionmaker(settings.database_url).begin() as s:
        (early,) = claims.claim_due(s, db_now(s), lookahead=40, lease=60, batch=1)
    with pytest.raises(NotDueYet) as waited:
        starter.run(stream.id, early.token)
    assert 25 < waited.value.seconds <= 30
    got = row(settings, stream.id)
    assert got.state == StreamState.STARTING and got.claim_token == early.token
    assert got.attempts == 0 and fake_api.requests == []


def test_a_429_on_the_reconcile_pauses_every_start(settings, starter, book, fake_api) -> None:
    stream = book()
    meeting = str(stream.meeting_id)
    fake_api.script("start", 503, meeting_id=meeting)
    assert starter.run(stream.id, claim(settings, stream.id)) == "retrying"
    fake_api.script("active", {"status": 429, "retry_after": "30"}, meeting_id=meeting)
    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(update(S).where(S.id == stream.id).values(due_at=db_now(s)))
    with get_sessionmaker(settings.database_url).begin() as s:
        (again,) = claims.claim_due(s, db_now(s), lookahead=0, lease=60, batch=1)
    assert starter.run(stream.id, again.token) == "retrying"
    assert outcomes(settings, stream.id) == [("start", "ambiguous"), ("reconcile", "retryable")]
    with get_sessionmaker(settings.database_url)() as s:
        (pause,) = s.scalars(select(UpstreamPause)).all()
        assert pause.paused_until >= db_now(s) + timedelta(seconds=25)


def test_an_unexpected_error_after_the_attempt_was_written_ends_the_run(settings, book) -> None:
    """Not a lease loop: the call may have left, so it is unclear, retried after a reconcile."""
    stream = book()

    def handler(request: httpx.Request) -> httpx.Response:
        raise ValueError("a bug, with text that is never stored: sk-secret")

    assert run_with_answers(settings, stream.id, handler) == "retrying"
    got = row(settings, stream.id)
    assert got.state == StreamState.RETRYING and got.claim_token is None
    assert got.last_error == "start: unexpected ValueError in the worker"
    assert outcomes(settings, stream.id) == [("start", "ambiguous")]


def test_a_passing_error_fetching_an_adopted_key_retries_keeping_the_livestream(
    settings, book
) -> None:
    """504 on the start, the meeting's livestream without a key, then 503 once on its key:
    retried (the livestream kept on the row meanwhile) until the key comes, never failed."""
    stream = book()
    answers = iter(
        [
            httpx.Response(504),
            httpx.Response(200, json={"success": True, "data": {"id": "ls-9"}}),
            httpx.Response(503),
            httpx.Response(200, json={"success": True, "data": {"id": "ls-9"}}),
            httpx.Response(
                200, json={"success": True, "data": {"id": "ls-9", "stream_key": "sk-9-0123"}}
            ),
        ]
    )
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path.rsplit('/', 1)[-1]}")
        return next(answers)

    assert run_with_answers(settings, stream.id, handler) == "retrying"
    assert run_with_answers(settings, stream.id, handler) == "retrying"
    got = row(settings, stream.id)
    assert got.state == StreamState.RETRYING and got.livestream_id == "ls-9"
    assert run_with_answers(settings, stream.id, handler) == "adopted"
    got = row(settings, stream.id)
    assert got.state == StreamState.STARTED
    assert cipher_for(settings).decrypt(got.stream_key_ciphertext).get() == "sk-9-0123"
    assert sent == [
        "POST livestreams", "GET active-livestream", "GET ls-9", "GET active-livestream",
        "GET ls-9",
    ]  # fmt: skip
    assert outcomes(settings, stream.id) == [
        ("start", "ambiguous"), ("reconcile", "adopted"), ("fetch_key", "retryable"),
        ("reconcile", "adopted"), ("fetch_key", "fetched"),
    ]  # fmt: skip


def test_a_reconcile_that_found_nothing_settles_the_unclear_call(settings, book) -> None:
    """After `absent`, the earlier unclear start created nothing: later runs start without
    asking again (and ops may cancel the booking)."""
    stream = book()
    answers = iter(
        [
            httpx.Response(502),
            httpx.Response(404, json={"success": False, "error": {"message": "none"}}),
            httpx.Response(408),
            httpx.Response(201, json={"success": True, "data": {"id": "ls-5", "stream_key": "k5"}}),
        ]
    )
    assert run_with_answers(settings, stream.id, lambda request: next(answers)) == "retrying"
    assert run_with_answers(settings, stream.id, lambda request: next(answers)) == "retrying"
    assert run_with_answers(settings, stream.id, lambda request: next(answers)) == "started"
    assert outcomes(settings, stream.id) == [
        ("start", "ambiguous"), ("reconcile", "absent"), ("start", "retryable"),
        ("start", "started"),
    ]  # fmt: skip
