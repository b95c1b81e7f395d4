"""Outbound webhooks on SQLite and PostgreSQL: the outbox is written with the state change,
and a loopback platform receives every event signed (checked by `standardwebhooks`)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from models import (
    DeliveryState,
    EndReason,
    Problem,
    ScheduledStream,
    StatusSource,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from models.db import db_now, get_sessionmaker
from tests.conftest import make_due, tuned
from tests.lifecycle_rows import follow
from tests.outbound_receiver import PlatformReceiver
from worker.bookings import booking, observe, transitions
from worker.crypto import cipher_for
from worker.dispatch import Queue, share, tick
from worker.errors import BookingError, UnsafeWebhookURL
from worker.follow import claims as tracking
from worker.lease.claims import Claim
from worker.notify import claims as webhook_claims
from worker.notify import endpoints, ssrf
from worker.notify.sender import Sender, SendResult
from worker.settings import Secret
from worker.start import claims
from worker.upstream.responses import Livestream

STREAM_KEY = "sk-live-do-not-leak-0123456789"


@pytest.fixture
def open_settings(settings):
    return tuned(settings, webhooks={"allow_private": True})


@pytest.fixture
def factory(open_settings):
    return get_sessionmaker(open_settings.database_url)


@pytest.fixture
def cipher(open_settings):
    return cipher_for(open_settings)


@pytest.fixture
def receiver():
    with PlatformReceiver() as rx:
        yield rx


def register(factory, settings, cipher, url: str, types=("*",)):
    with factory.begin() as s:
        created = endpoints.add(s, settings, cipher, url=url, event_types=types)
        return created.endpoint.id, created.secret


def events(factory) -> list[WebhookEvent]:
    with factory() as s:
        return list(s.scalars(select(WebhookEvent).order_by(WebhookEvent.created_at)))


def deliveries(factory) -> list[WebhookDelivery]:
    with factory() as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)))


def deliver_due(factory, settings, cipher, **kw) -> list[SendResult]:
    """One dispatch tick, then each webhook claim it made run in this process."""
    claimed: list[Claim] = []
    tick(factory, settings, claimed.append)
    sender = Sender(factory, settings, cipher, owner=uuid.uuid4(), rand=lambda: 0.5, **kw)
    try:
        return [sender.run(c.row_id, c.token) for c in claimed if c.kind == "webhook"]
    finally:
        sender.close()


def test_a_cancel_writes_its_event_and_one_delivery_per_subscribed_endpoint(
    factory, open_settings, cipher, book
) -> None:
    wants_all, _ = register(factory, open_settings, cipher, "http://127.0.0.1:9/a")
    register(factory, open_settings, cipher, "http://127.0.0.1:9/b", types=["stream.live"])
    stream = book(external_ref="evt-1")
    with factory.begin() as s:
        booking.cancel(s, booking.find(s, stream.id))
    (event,) = events(factory)
    assert event.type == "booking.cancelled" and event.stream_id == stream.id
    body = json.loads(event.payload)
    assert body["id"] == str(event.id) and body["type"] == "booking.cancelled"
    assert body["data"] == {
        "booking_id": str(stream.id), "ref": "evt-1", "meeting_id": str(stream.meeting_id),
        "state": "cancelled", "livestream_id": None, "playback_url": None,
        "reason": "cancelled by ops",
    }  # fmt: skip
    (delivery,) = deliveries(factory)
    assert (delivery.endpoint_id, delivery.state, delivery.attempts) == (wants_all, "pending", 0)


def test_a_rolled_back_change_leaves_no_event(factory, open_settings, cipher, book) -> None:
    register(factory, open_settings, cipher, "http://127.0.0.1:9/a")
    stream = book()
    with factory() as s:
        booking.cancel(s, booking.find(s, stream.id))
        s.rollback()
    assert events(factory) == [] and deliveries(factory) == []


def test_a_refused_change_writes_no_event(factory, open_settings, cipher, book) -> None:
    register(factory, open_settings, cipher, "http://127.0.0.1:9/a")
    stream = book()
    with factory.begin() as s:
        booking.cancel(s, booking.find(s, stream.id))
    with factory.begin() as s, pytest.raises(BookingError):
        booking.cancel(s, booking.find(s, stream.id))  # already cancelled: refused
    assert [e.type for e in events(factory)] == ["booking.cancelled"]


def test_nothing_is_written_when_no_endpoint_wants_the_event(
    factory, open_settings, cipher, book
) -> None:
    register(factory, open_settings, cipher, "http://127.0.0.1:9/a", types=["stream.live"])
    stream = book()
    with factory.begin() as s:
        booking.cancel(s, booking.find(s, stream.id))
    assert events(factory) == [] and deliveries(factory) == []


def test_expired_bookings_each_get_a_missed_event(factory, open_settings, cipher, book) -> None:
    register(factory, open_settings, cipher, "http://127.0.0.1:9/a")
    streams = [book() for _ in range(3)]
    with factory.begin() as s:
        now = db_now(s)
        make_due(s, [x.id for x in streams], now - timedelta(hours=1), timedelta(minutes=1))
        assert claims.expire_untried(s, now) == 3
    got = events(factory)
    assert sorted(e.stream_id for e in got) == sorted(x.id for x in streams)
    assert {e.type for e in got} == {"booking.missed"}
    assert {json.loads(e.payload)["data"]["state"] for e in got} == {"missed"}


def test_the_lifecycle_tells_started_live_and_ended_once_each_and_never_the_key(
    factory, settings, open_settings, cipher, book
) -> None:
    register(factory, open_settings, cipher, "http://127.0.0.1:9/a")
    stream = book()
    token = uuid.uuid4()
    with factory.begin() as s:
        s.execute(
            update(ScheduledStream)
            .where(ScheduledStream.id == stream.id)
            .values(state="starting", claim_token=token)
        )
    ciphertext = cipher_for(settings).encrypt(Secret(STREAM_KEY))
    livestream = Livestream(
        "ls-1", "INVOKED", "rtmps://ingest", "https://play/1", Secret(STREAM_KEY)
    )
    with factory.begin() as s:
        now = db_now(s)
        assert transitions.finish_started(s, stream.id, token, now, livestream, ciphertext, now)
    for _ in range(2):  # the same LIVE twice (a poll and a webhook): one stream.live
        with factory.begin() as s:
            seen = observe.Observation("ls-1", "LIVE", db_now(s), StatusSource.WEBHOOK)
            observe.apply(s, stream.id, seen, db_now(s))
    with factory.begin() as s:
        s.execute(
            update(ScheduledStream).where(ScheduledStream.id == stream.id).values(claim_token=token)
        )
        assert tracking.end(s, stream.id, token, db_now(s), EndReason.SCHEDULED_STOP)
    got = events(factory)
    assert [e.type for e in got] == ["booking.started", "stream.live", "stream.ended"]
    data = [json.loads(e.payload)["data"] for e in got]
    assert [d["state"] for d in data] == ["started", "live", "ended"]
    assert data[0]["livestream_id"] == "ls-1" and data[0]["playback_url"] == "https://play/1"
    assert data[2]["reason"] == "scheduled_stop"
    for e in got:
        assert STREAM_KEY not in e.payload and ciphertext not in e.payload
        assert "rtmps://ingest" not in e.payload


def test_flags_are_told_once(factory, settings, open_settings, cipher, book) -> None:
    register(factory, open_settings, cipher, "http://127.0.0.1:9/a")
    stream = book()
    follow(settings.database_url, stream.id, "started")
    for _ in range(2):
        with factory.begin() as s:
            seen = observe.Observation(f"ls-{stream.id.hex[:12]}", "ERRORED", db_now(s),
                                       StatusSource.POLL)  # fmt: skip
            observe.apply(s, stream.id, seen, db_now(s))
    token = uuid.uuid4()
    with factory.begin() as s:
        s.execute(
            update(ScheduledStream).where(ScheduledStream.id == stream.id).values(claim_token=token)
        )
        now = db_now(s)
        tracking.finish(s, stream.id, token, now, due_at=now, began=now,
                        problem=Problem.STOP_FAILED, reason="refused")  # fmt: skip
    assert [e.type for e in events(factory)] == ["stream.errored", "stream.stop_failed"]


def test_a_delivery_reaches_the_platform_signed_and_is_recorded(
    factory, open_settings, cipher, book, receiver
) -> None:
    endpoint_id, secret = register(factory, open_settings, cipher, receiver.url)
    receiver.secrets = [secret.get()]
    stream = book()
    with factory.begin() as s:
        booking.cancel(s, booking.find(s, stream.id))
    assert deliver_due(factory, open_settings, cipher) == [SendResult.DELIVERED]
    (got,) = receiver.wait_for(1)
    (event,) = events(factory)
    assert got.verified_by == (0,)
    assert got.headers["webhook-id"] == str(event.id)
    assert got.body == event.payload.encode()
    assert got.headers["content-type"] == "application/json"
    (delivery,) = deliveries(factory)
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("delivered", 1, 200)
    with factory() as s:
        (attempt,) = s.scalars(select(WebhookAttempt)).all()
        endpoint = s.get(WebhookEndpoint, endpoint_id)
    assert (attempt.number, attempt.status, attempt.response_excerpt) == (1, 200, '{"ok": true}')
    assert attempt.duration is not None and attempt.finished_at is not None
    assert endpoint is not None and endpoint.last_success_at is not None
    assert endpoint.failures_in_a_row == 0
    # Nothing more is due: a second tick sends nothing.
    assert deliver_due(factory, open_settings, cipher) == []


def test_a_failure_is_retried_on_the_schedule_with_the_same_id(
    factory, open_settings, cipher, book, receiver
) -> None:
    endpoint_id, secret = register(factory, open_settings, cipher, receiver.url)
    receiver.secrets = [secret.get()]
    receiver.answer(503)
    stream = book()
    with factory.begin() as s:
        booking.cancel(s, booking.find(s, stream.id))
    assert deliver_due(factory, open_settings, cipher) == [SendResult.RETRYING]
    (delivery,) = deliveries(factory)
    with factory() as s:
        (attempt,) = s.scalars(select(WebhookAttempt)).all()
        endpoint = s.get(WebhookEndpoint, endpoint_id)
    assert (delivery.state, delivery.last_status, delivery.last_error) == (
        "pending",
        503,
        "HTTP 503",
    )
    assert delivery.due_at - attempt.finished_at == timedelta(seconds=5)  # no jitter (rand 0.5)
    assert attempt.status == 503 and attempt.response_excerpt == ("no thanks " * 50)
    assert endpoint.failures_in_a_row == 1 and endpoint.failing_since is not None
    assert deliver_due(factory, open_settings, cipher) == []  # not due yet
    with factory.begin() as s:
        s.execute(update(WebhookDelivery).values(due_at=db_now(s)))
    assert deliver_due(factory, open_settings, cipher) == [SendResult.DELIVERED]
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body and second.verified_by == (0,)
    with factory() as s:
        endpoint = s.get(WebhookEndpoint, endpoint_id)
        assert [
            a.status for a in s.scalars(select(WebhookAttempt).order_by(WebhookAttempt.number))
        ] == [503, 200]
    assert endpoint.failures_in_a_row == 0 and endpoint.failing_since is None


def test_410_disables_the_endpoint_and_later_events_are_not_queued_for_it(
    factory, open_settings, cipher, book, receiver
) -> None:
    endpoint_id, _ = register(factory, open_settings, cipher, receiver.url)
    receiver.answer(410)
    first, second, third = book(), book(), book()
    with factory.begin() as s:
        booking.cancel(s, booking.find(s, first.id))
    with factory.begin() as s:
        claimed = webhook_claims.claim(s, db_now(s), lease=60, batch=10)
        booking.cancel(s, booking.find(s, second.id))  # due after the claim: waits
    sender = Sender(factory, open_settings, cipher, owner=uuid.uuid4())
    try:
        assert sender.run(claimed[0].row_id, claimed[0].token) is SendResult.DISABLED
    finally:
        sender.close()
    with factory() as s:
        endpoint = s.get(WebhookEndpoint, endpoint_id)
    assert endpoint.enabled is False and "410" in (endpoint.disabled_reason or "")
    delivery, waiting = deliveries(factory)
    assert delivery.state == "failed" and delivery.last_status == 410
    assert waiting.state == "held"  # parked with the endpoint, not scanned by every tick
    with factory.begin() as s:
        booking.cancel(s, booking.find(s, third.id))
    assert len(events(factory)) == 2 and len(deliveries(factory)) == 2  # nobody to tell
    assert len(receiver.got) == 1


def test_a_disabled_endpoints_deliveries_are_held_and_go_out_in_order_once_enabled(
    factory, open_settings, cipher, book, receiver
) -> None:
    endpoint_id, _ = register(factory, open_settings, cipher, receiver.url)
    first, second = book(), book()
    with factory.begin() as s:
        booking.cancel(s, booking.find(s, first.id))
    with factory.begin() as s:
        endpoints.set_enabled(s, endpoint_id, False, "maintenance")
        booking.cancel(s, booking.find(s, second.id))  # nobody enabled wants it: no delivery
    assert [d.state for d in deliveries(factory)] == ["held"]
    assert deliver_due(factory, open_settings, cipher) == []
    with factory.begin() as s:
        (old,) = deliveries(factory)
        replayed = endpoints.replay(s, old.id)
        assert replayed.state == "held"  # waits for the endpoint like the rest
    with factory.begin() as s:
        endpoints.set_enabled(s, endpoint_id, True)
    assert deliver_due(factory, open_settings, cipher) == [SendResult.DELIVERED] * 2
    assert [d.state for d in deliveries(factory)] == ["delivered", "delivered"]
    assert len({g.headers["webhook-id"] for g in receiver.wait_for(2)}) == 1


def test_a_claimed_delivery_of_an_endpoint_disabled_meanwhile_is_not_sent(
    factory, open_settings, cipher, book, receiver
) -> None:
    endpoint_id, _ = register(factory, open_settings, cipher, receiver.url)
    stream = book()
    with factory.begin() as s:
        booking.cancel(s, booking.find(s, stream.id))
    with factory.begin() as s:
        (claim,) = webhook_claims.claim(s, db_now(s), lease=60, batch=10)
    with factory.begin() as s:
        endpoints.set_enabled(s, endpoint_id, False)
    sender = Sender(factory, open_settings, cipher, owner=uuid.uuid4())
    try:
        assert sender.run(claim.row_id, claim.token) is SendResult.STALE
    finally:
        sender.close()
    assert [d.state for d in deliveries(factory)] == ["held"] and receiver.got == []


def test_during_a_rotation_both_secrets_sign(
    factory, open_settings, cipher, book, receiver
) -> None:
    endpoint_id, old = register(factory, open_settings, cipher, receiver.url)
    with factory.begin() as s:
        new = endpoints.rotate_secret(s, cipher, endpoint_id).secret
    receiver.secrets = [new.get(), old.get()]
    stream = book()
    with factory.begin() as s:
        booking.cancel(s, booking.find(s, stream.id))
    deliver_due(factory, open_settings, cipher)
    (got,) = receiver.wait_for(1)
    assert got.verified_by == (0, 1)
    assert len(got.headers["webhook-signature"].split(" ")) == 2


def test_the_ssrf_guard_refuses_at_registration_and_again_at_delivery(
    factory, settings, open_settings, cipher, book, receiver
) -> None:
    with factory.begin() as s, pytest.raises(UnsafeWebhookURL, match="loopback"):
        endpoints.add(s, settings, cipher, url=receiver.url, event_types=["*"])
    with factory() as s:
        assert s.scalars(select(WebhookEndpoint)).all() == []
    register(factory, open_settings, cipher, receiver.url)  # allowed then, refused now
    stream = book()
    with factory.begin() as s:
        booking.cancel(s, booking.find(s, stream.id))
    # Refused for good: waiting three days will not make the address public.
    assert deliver_due(factory, settings, cipher) == [SendResult.FAILED]
    with factory() as s:
        (attempt,) = s.scalars(select(WebhookAttempt)).all()
        (delivery,) = s.scalars(select(WebhookDelivery)).all()
    assert attempt.status is None and "loopback" in (attempt.error or "")
    assert delivery.state == DeliveryState.FAILED
    assert receiver.got == []


def one_event_for_a_named_host(factory, settings, cipher, book, receiver, host, address):
    """An endpoint at ``host`` (on the receiver's port), registered while ``host`` resolved to
    ``address``, and one event for it."""
    url = f"http://{host}:{receiver.url.rsplit(':', 1)[1]}"
    with factory.begin() as s:
        endpoints.add(s, settings, cipher, url=url, event_types=["*"],
                      resolver=lambda h, p: [address])  # fmt: skip
    stream = book()
    with factory.begin() as s:
        booking.cancel(s, booking.find(s, stream.id))


def test_a_name_that_rebinds_to_loopback_after_registration_is_refused_at_connect(
    factory, settings, cipher, book, receiver
) -> None:
    # Registered while its name pointed at a public address; by delivery it points at the
    # receiver on loopback. The delivery's one lookup sees that, and nothing is sent.
    one_event_for_a_named_host(
        factory, settings, cipher, book, receiver, "hooks.rebind.invalid", "93.184.216.34"
    )
    lookups: list[str] = []

    def now_loopback(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    assert deliver_due(factory, settings, cipher, resolver=now_loopback) == [SendResult.FAILED]
    with factory() as s:
        (attempt,) = s.scalars(select(WebhookAttempt)).all()
    assert "resolves to 127.0.0.1, a loopback address" in (attempt.error or "")
    assert lookups == ["hooks.rebind.invalid"] and receiver.got == []


def test_the_delivery_goes_to_the_address_its_check_saw_under_the_urls_host(
    factory, settings, cipher, book, receiver, monkeypatch
) -> None:
    # Loopback counts as public here, so the guard lets the receiver through: the name is
    # one the system cannot resolve, so only the checked answer can have been connected to.
    real = ssrf.classify
    monkeypatch.setattr(
        ssrf, "classify", lambda a: None if a.is_loopback else real(a)
    )  # fmt: skip
    host = "hooks.pinned.invalid"
    one_event_for_a_named_host(factory, settings, cipher, book, receiver, host, "127.0.0.1")
    delivered = deliver_due(factory, settings, cipher, resolver=lambda h, p: ["127.0.0.1"])
    assert delivered == [SendResult.DELIVERED]
    (got,) = receiver.wait_for(1)
    assert got.headers["host"].split(":")[0] == host


def test_a_run_that_died_mid_delivery_is_claimed_again_after_its_lease(
    factory, open_settings, cipher, book, receiver
) -> None:
    register(factory, open_settings, cipher, receiver.url)
    stream = book()
    with factory.begin() as s:
        booking.cancel(s, booking.find(s, stream.id))
        now = db_now(s)
        (lost,) = webhook_claims.claim(s, now, lease=60, batch=10)
    with factory.begin() as s:  # the run confirmed and wrote its attempt, then died
        assert (
            webhook_claims.confirm(
                s, lost.row_id, lost.token, db_now(s), lease=60, owner=uuid.uuid4()
            )
            is not None
        )
    # Its message is gone with the broker (or the worker): nothing is claimable in the lease.
    with factory.begin() as s:
        assert webhook_claims.claim(s, db_now(s), lease=60, batch=10) == []
        again = webhook_claims.claim(s, db_now(s) + timedelta(seconds=61), lease=60, batch=10)
    assert [c.row_id for c in again] == [lost.row_id]
    sender = Sender(factory, open_settings, cipher, owner=uuid.uuid4())
    try:
        assert sender.run(again[0].row_id, again[0].token) is SendResult.DELIVERED
        # The dead run's token, if it ever came back, changes nothing.
        assert sender.run(lost.row_id, lost.token) is SendResult.STALE
    finally:
        sender.close()
    with factory() as s:
        attempts = s.scalars(select(WebhookAttempt).order_by(WebhookAttempt.number)).all()
    assert [(a.number, a.status) for a in attempts] == [(1, None), (2, 200)]
    assert len(receiver.wait_for(1)) == 1


def test_replay_sends_the_same_message_again(factory, open_settings, cipher, book, receiver):
    _, secret = register(factory, open_settings, cipher, receiver.url)
    receiver.secrets = [secret.get()]
    stream = book()
    with factory.begin() as s:
        booking.cancel(s, booking.find(s, stream.id))
    deliver_due(factory, open_settings, cipher)
    (delivered,) = deliveries(factory)
    with factory.begin() as s:
        endpoints.replay(s, delivered.id)
    assert deliver_due(factory, open_settings, cipher) == [SendResult.DELIVERED]
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body and second.verified_by == (0,)


def test_the_claim_holds_at_most_a_batch_at_once(factory, open_settings, cipher, book) -> None:
    register(factory, open_settings, cipher, "http://127.0.0.1:9/a")
    streams = [book() for _ in range(3)]
    with factory.begin() as s:
        for stream in streams:
            booking.cancel(s, booking.find(s, stream.id))

    def hand_out(s, now) -> list[Claim]:
        """What a tick with a claim batch of 2 hands out (worker.dispatch.share)."""
        held = webhook_claims.held(s, now)
        queue = Queue(budget=0, cap=2, starts=0, follow_ups=0, deliveries=held)
        return webhook_claims.claim(s, now, lease=60, batch=share(queue).deliveries)

    with factory.begin() as s:
        now = db_now(s)
        first = hand_out(s, now)
        assert len(first) == 2
        assert hand_out(s, now) == []  # two held already
        done = webhook_claims.finish(
            s, first[0].row_id, first[0].token, now, state=DeliveryState.DELIVERED,
            status=200, error=None,
        )  # fmt: skip
        assert done
        assert len(hand_out(s, now)) == 1
