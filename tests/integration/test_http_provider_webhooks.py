"""POST /v1/webhooks/realtimekit through FastAPI's TestClient, on SQLite and PostgreSQL.

Bodies are signed here with a key made for the run, as RealtimeKit signs them; the answers
and the rows they leave are what is asserted. The issue's table:

| delivery                    | answer | effect                                         |
| bad or missing signature    | 401    | nothing changed, nothing stored                |
| replayed (same rtk-uuid)    | 200    | applied once                                   |
| unknown stream              | 200    | counted (a row with result unknown_stream)     |
| older than what is stored   | 200    | does not move the state back (result stale)    |
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from models import ProviderWebhook, ScheduledStream, StatusEvent, StreamState
from models.db import db_now, get_sessionmaker
from tests.conftest import tuned
from tests.dbdump import dump
from tests.http_api import Api
from tests.processes import free_port
from tests.webhook_signing import (
    PATH,
    KeyServer,
    encode,
    provider_time,
    public_pem,
    sign,
    signed_headers,
    signing_key,
    status_update,
)
from worker.bookings import booking
from worker.cli import cli
from worker.http.app import create_app
from worker.inbound import intake as deliveries
from worker.inbound.signature import Delivery, WebhookKeys
from worker.settings import Settings, Upstream

PROBLEM = "application/problem+json"
SECRET = "sk_live_WEBHOOKSECRET_5a4b3c2d1e"  # a stream key, as the payload carries it
UPDATE = "livestreaming.statusUpdate"


class Provider:
    """RealtimeKit delivering webhooks to the app built from ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.client = TestClient(self.app, raise_server_exceptions=True)
        self._sent = 0

    def deliver(
        self,
        payload: dict[str, Any] | bytes,
        *,
        delivery: str | None = "",
        headers: dict[str, str] | None = None,
        key: Any = None,
    ) -> Any:
        """Sign and post ``payload``; ``delivery`` "" picks a new rtk-uuid, None sends none."""
        body = encode(payload)
        if delivery == "":
            self._sent += 1
            delivery = f"delivery-{self._sent}-{uuid.uuid4()}"
        sent = {**signed_headers(body, delivery, key), **(headers or {})}
        return self.client.post(PATH, content=body, headers=sent)


@pytest.fixture
def keyed(settings: Settings) -> Settings:
    return tuned(settings, webhooks={"provider_public_key": public_pem(signing_key())})


@pytest.fixture
def provider(keyed: Settings) -> Provider:
    return Provider(keyed)


@pytest.fixture
def started(settings, book):
    """Factory: a booking in ``started`` with a livestream id, as a start leaves it."""

    def _started(livestream_id: str | None = None) -> tuple[uuid.UUID, str]:
        livestream_id = livestream_id or f"ls-{uuid.uuid4()}"
        stream = book()
        with get_sessionmaker(settings.database_url).begin() as s:
            now = db_now(s)
            s.execute(
                update(ScheduledStream)
                .where(ScheduledStream.id == stream.id)
                .values(
                    state=StreamState.STARTED.value,
                    livestream_id=livestream_id,
                    started_at=now - timedelta(minutes=1),
                    livestream_status="INVOKED",
                    status_observed_at=now - timedelta(minutes=1),
                    due_at=now + timedelta(hours=1),
                    attempts=1,
                )
            )
        return stream.id, livestream_id

    return _started


def row(settings: Settings, stream_id: uuid.UUID) -> ScheduledStream:
    with get_sessionmaker(settings.database_url)() as s:
        found = s.get(ScheduledStream, stream_id)
        assert found is not None
        return found


def webhook_rows(settings: Settings) -> list[ProviderWebhook]:
    with get_sessionmaker(settings.database_url)() as s:
        return list(s.scalars(select(ProviderWebhook).order_by(ProviderWebhook.received_at)))


def timeline(settings: Settings, stream_id: uuid.UUID) -> list[tuple[str, str, datetime]]:
    with get_sessionmaker(settings.database_url)() as s:
        query = select(StatusEvent).where(StatusEvent.stream_id == stream_id)
        events = s.scalars(query.order_by(StatusEvent.observed_at, StatusEvent.id))
        return [(e.status, e.source, e.observed_at) for e in events]


def at(seconds_ago: float) -> tuple[str, datetime]:
    """(updatedAt as the provider spells it, the instant) ``seconds_ago`` before now."""
    instant = (datetime.now(UTC) - timedelta(seconds=seconds_ago)).replace(microsecond=123000)
    return provider_time(instant), instant


def test_live_moves_a_started_booking_to_live(provider, keyed, started) -> None:
    stream_id, livestream_id = started()
    updated, instant = at(5)
    answer = provider.deliver(
        status_update(livestream_id, "LIVE", updatedAt=updated), delivery="d-live"
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"result": "applied"}

    live = row(keyed, stream_id)
    assert live.state == StreamState.LIVE.value and live.live_at == instant
    assert live.livestream_status == "LIVE" and live.status_observed_at == instant
    assert ("LIVE", "webhook", instant) in timeline(keyed, stream_id)
    (stored,) = webhook_rows(keyed)
    assert (stored.delivery_id, stored.event, stored.livestream_id, stored.status) == (
        "d-live",
        "livestreaming.statusUpdate",
        livestream_id,
        "LIVE",
    )
    assert (stored.stream_id, stored.result) == (stream_id, "applied")


def test_no_api_key_is_needed_and_one_given_is_not_looked_at(provider, started) -> None:
    _, livestream_id = started()
    bogus = {"Authorization": "Bearer lsk_000000000000_" + "A" * 43}
    answer = provider.deliver(status_update(livestream_id, "LIVE"), headers=bogus)
    assert answer.status_code == 200 and answer.json() == {"result": "applied"}
    operation = provider.client.get("/openapi.json").json()["paths"][PATH]["post"]
    assert "security" not in operation
    assert {"200", "400", "401", "413", "503"} <= set(operation["responses"])


def _other_key_signature(body: bytes) -> str:
    return sign(body, signing_key("someone else"))


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "not base64 at all!",
        "c2lnbmF0dXJl",  # base64 of "signature"
        "other key",
        "other body",
        "re-serialised",
    ],
)
def test_a_bad_or_missing_signature_is_401_and_nothing_changes(
    provider, keyed, started, signature
) -> None:
    stream_id, livestream_id = started()
    payload = status_update(livestream_id, "LIVE", streamKey=SECRET)
    body = encode(payload)
    headers = {"content-type": "application/json", "rtk-uuid": "d-forged"}
    if signature == "other key":
        signature = _other_key_signature(body)
    elif signature == "other body":
        signature = sign(encode(status_update(livestream_id, "IDLE")))
    elif signature == "re-serialised":
        # The same JSON spelt otherwise: only the bytes as sent are signed.
        signature = sign(json.dumps(payload, separators=(",", ":")).encode())
    if signature is not None:
        headers["rtk-signature"] = signature
    before = dump(keyed.database_url)
    answer = provider.client.post(PATH, content=body, headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["www-authenticate"].startswith("RTK-Signature")
    assert answer.json()["status"] == 401
    assert SECRET not in answer.text
    assert dump(keyed.database_url) == before
    assert row(keyed, stream_id).state == StreamState.STARTED.value


def test_a_replayed_delivery_is_applied_once(provider, keyed, started) -> None:
    stream_id, livestream_id = started()
    payload = status_update(livestream_id, "ERRORED", updatedAt=at(5)[0])
    first = provider.deliver(payload, delivery="d-once")
    assert first.json() == {"result": "applied"}
    after_first = dump(keyed.database_url)
    for replay in (payload, status_update(livestream_id, "LIVE", updatedAt=at(1)[0])):
        again = provider.deliver(replay, delivery="d-once")
        assert again.status_code == 200 and again.json() == {"result": "duplicate"}
    assert dump(keyed.database_url) == after_first
    assert row(keyed, stream_id).problem == "errored"
    assert [r.delivery_id for r in webhook_rows(keyed)] == ["d-once"]


def test_without_rtk_uuid_the_body_digest_dedupes(provider, keyed, started) -> None:
    _, livestream_id = started()
    payload = status_update(livestream_id, "LIVE")
    assert provider.deliver(payload, delivery=None).json() == {"result": "applied"}
    assert provider.deliver(payload, delivery=None).json() == {"result": "duplicate"}
    (stored,) = webhook_rows(keyed)
    digest = hashlib.sha256(encode(payload)).hexdigest()
    assert stored.delivery_id == f"sha256:{digest}"[:64]


def test_one_signed_body_replayed_under_fresh_ids_is_applied_once(provider, keyed, started) -> None:
    # rtk-uuid is not signed: a captured delivery sent again under new ids is the same one.
    _, livestream_id = started()
    payload = status_update(livestream_id, "ERRORED", updatedAt=at(5)[0])
    assert provider.deliver(payload, delivery="d-1").json() == {"result": "applied"}
    after_first = dump(keyed.database_url)
    for fresh in ("d-2", "d-3", None):
        again = provider.deliver(payload, delivery=fresh)
        assert again.status_code == 200 and again.json() == {"result": "duplicate"}
    assert dump(keyed.database_url) == after_first
    assert [r.delivery_id for r in webhook_rows(keyed)] == ["d-1"]


def test_the_stored_observation_again_in_another_body_changes_nothing(
    provider, keyed, started
) -> None:
    # The same status and instant, in a body that differs (a field order, an extra field):
    # no timeline row, and no status check asked for (it would spend the shared budget).
    stream_id, livestream_id = started()
    updated_at = at(5)[0]
    first = status_update(livestream_id, "OFFLINE", updatedAt=updated_at)
    assert provider.deliver(first, delivery="d-1").json() == {"result": "applied"}
    before = row(keyed, stream_id)
    events = timeline(keyed, stream_id)
    second = {**status_update(livestream_id, "OFFLINE", updatedAt=updated_at), "extra": 1}
    assert provider.deliver(second, delivery="d-2").json() == {"result": "stale"}
    after = row(keyed, stream_id)
    assert timeline(keyed, stream_id) == events
    assert (after.due_at, after.updated_at) == (before.due_at, before.updated_at)


def test_a_delivery_for_an_unknown_stream_is_counted(provider, keyed, started) -> None:
    stream_id, _ = started()
    before = row(keyed, stream_id)
    answer = provider.deliver(status_update("ls-not-ours", "LIVE"), delivery="d-unknown")
    assert answer.status_code == 200 and answer.json() == {"result": "unknown_stream"}
    (stored,) = webhook_rows(keyed)
    assert (stored.livestream_id, stored.stream_id, stored.result) == (
        "ls-not-ours",
        None,
        "unknown_stream",
    )
    after = row(keyed, stream_id)
    assert (after.state, after.livestream_status) == (before.state, before.livestream_status)
    assert timeline(keyed, stream_id) == []


def test_a_late_delivery_does_not_move_the_status_back(provider, keyed, started) -> None:
    stream_id, livestream_id = started()
    newer, newer_at = at(10)
    older, older_at = at(20)
    assert provider.deliver(status_update(livestream_id, "LIVE", updatedAt=newer)).json() == {
        "result": "applied"
    }
    late = provider.deliver(status_update(livestream_id, "OFFLINE", updatedAt=older))
    assert late.status_code == 200 and late.json() == {"result": "stale"}
    kept = row(keyed, stream_id)
    assert kept.livestream_status == "LIVE" and kept.status_observed_at == newer_at
    assert kept.state == StreamState.LIVE.value
    assert [r.result for r in webhook_rows(keyed)] == ["applied", "stale"]
    # Kept in the timeline all the same, at the instant it held.
    assert ("OFFLINE", "webhook", older_at) in timeline(keyed, stream_id)


def test_an_instant_from_a_clock_running_ahead_does_not_hide_later_news(
    provider, keyed, started
) -> None:
    stream_id, livestream_id = started()
    ahead = provider.deliver(status_update(livestream_id, "LIVE", updatedAt=at(-3600)[0]))
    assert ahead.json() == {"result": "applied"}
    stored = row(keyed, stream_id).status_observed_at
    assert stored is not None and stored < at(-60)[1]  # taken as the database's now
    later = provider.deliver(status_update(livestream_id, "OFFLINE", updatedAt=at(-1)[0]))
    assert later.json() == {"result": "applied"}
    assert row(keyed, stream_id).livestream_status == "OFFLINE"


def test_errored_flags_the_booking_and_a_later_live_clears_it(provider, keyed, started) -> None:
    stream_id, livestream_id = started()
    provider.deliver(status_update(livestream_id, "LIVE", updatedAt=at(30)[0]))
    errored = provider.deliver(status_update(livestream_id, "ERRORED", updatedAt=at(20)[0]))
    assert errored.json() == {"result": "applied"}
    flagged = row(keyed, stream_id)
    assert flagged.problem == "errored" and flagged.livestream_status == "ERRORED"
    live = provider.deliver(status_update(livestream_id, "LIVE", updatedAt=at(10)[0]))
    assert live.json() == {"result": "applied"}
    cleared = row(keyed, stream_id)
    assert cleared.problem is None and cleared.livestream_status == "LIVE"
    assert cleared.state == StreamState.LIVE.value


@pytest.mark.parametrize(
    ("status", "stored"),
    [("BUFFERING", "BUFFERING"), ("RECONNECTING_" + "X" * 40, ("RECONNECTING_" + "X" * 40)[:32])],
)
def test_a_status_outside_the_documented_ones_is_stored_as_received(
    provider, keyed, started, status, stored
) -> None:
    stream_id, livestream_id = started()
    answer = provider.deliver(status_update(livestream_id, status))
    assert answer.status_code == 200 and answer.json() == {"result": "applied"}
    assert row(keyed, stream_id).livestream_status == stored
    assert [e[0] for e in timeline(keyed, stream_id)] == [stored]
    assert webhook_rows(keyed)[0].status == stored


@pytest.mark.parametrize("updated_at", [None, "yesterday", 1764410400, "2026-13-45T99:00:00Z"])
def test_without_a_readable_updated_at_the_database_now_is_the_instant(
    provider, keyed, started, updated_at
) -> None:
    stream_id, livestream_id = started()
    payload = status_update(livestream_id, "LIVE", updatedAt=updated_at)
    if updated_at is None:
        del payload["updatedAt"]
    before = datetime.now(UTC)
    assert provider.deliver(payload).json() == {"result": "applied"}
    live = row(keyed, stream_id)
    assert live.live_at is not None
    assert before - timedelta(seconds=5) <= live.live_at <= datetime.now(UTC) + timedelta(seconds=5)


def test_other_events_are_counted_and_ignored(provider, keyed, started) -> None:
    stream_id, _ = started()
    before = row(keyed, stream_id)
    answer = provider.deliver({"event": "meeting.started", "meetingId": "m-1"})
    assert answer.status_code == 200 and answer.json() == {"result": "ignored"}
    (stored,) = webhook_rows(keyed)
    assert (stored.event, stored.result, stored.stream_id) == ("meeting.started", "ignored", None)
    assert row(keyed, stream_id).updated_at == before.updated_at


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"not json " + SECRET.encode(), "body"),
        (b"\xff\xfe" + SECRET.encode(), "body"),
        (b'["livestreaming.statusUpdate"]', "body"),
        ({"streamKey": SECRET, "status": "LIVE"}, "event"),
        ({"event": 7, "streamKey": SECRET}, "event"),
        (
            {"event": UPDATE, "status": "LIVE", "streamKey": SECRET},
            "streamId",
        ),
        ({"event": UPDATE, "streamId": "", "status": "LIVE"}, "streamId"),
        (
            {"event": UPDATE, "streamId": "ls-1", "streamKey": SECRET},
            "status",
        ),
        ({"event": UPDATE, "streamId": "ls-1", "status": None}, "status"),
        ({"event": UPDATE, "streamId": "ls-1", "status": ["LIVE"]}, "status"),
        # What no database can store: NUL (PostgreSQL), a lone surrogate (no UTF-8 for it).
        ({"event": UPDATE, "streamId": "ls-1\u0000", "status": "LIVE"}, "streamId"),
        ({"event": UPDATE, "streamId": "ls-1", "status": "LIVE\ud800"}, "status"),
        ({"event": "meeting.\u0000started"}, "event"),
    ],
)
def test_a_signed_body_we_cannot_read_is_400_naming_the_field(
    provider, keyed, payload, field
) -> None:
    before = dump(keyed.database_url)
    answer = provider.deliver(payload)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == PROBLEM
    problem = answer.json()
    assert problem["errors"][0]["field"] == field and problem["detail"].startswith(field)
    assert SECRET not in answer.text
    assert dump(keyed.database_url) == before


def test_each_delivery_is_logged_with_its_ids_and_never_its_payload(
    provider, started, caplog
) -> None:
    stream_id, livestream_id = started()
    with caplog.at_level(logging.INFO):
        provider.deliver(status_update(livestream_id, "LIVE", streamKey=SECRET), delivery="d-log")
        provider.deliver(status_update("ls-nobody", "LIVE", streamKey=SECRET), delivery="d-x")
        provider.deliver(
            status_update(livestream_id, "LIVE", streamKey=SECRET),
            delivery="d-forged",
            key=signing_key("someone else"),
        )
    logged = [r for r in caplog.records if getattr(r, "action", "").startswith("provider_webhook")]
    assert [(r.action, r.delivery_id, getattr(r, "result", None)) for r in logged] == [
        ("provider_webhook", "d-log", "applied"),
        ("provider_webhook", "d-x", "unknown_stream"),
        ("provider_webhook_refused", "d-forged", None),
    ]
    assert logged[0].levelno == logging.INFO and logged[0].stream_id == str(stream_id)
    assert logged[1].stream_id is None
    everything = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert SECRET not in everything


# The key fetched from the provider's /.well-known/webhooks.json.


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key_server():
    with KeyServer(public_pem(signing_key())).running() as server:
        yield server


def _fetching(settings: Settings, url: str, clock: Clock | None = None) -> Provider:
    provider = Provider(tuned(settings, webhooks={"key_url": url}))
    assert provider.settings.webhooks.provider_public_key is None
    if clock is not None:
        provider.app.state.webhook_keys = WebhookKeys(url, clock=clock)
    return provider


def test_the_key_is_fetched_once_and_kept(settings, started, key_server) -> None:
    provider = _fetching(settings, key_server.url)
    _, livestream_id = started()
    forged = provider.deliver(status_update(livestream_id, "LIVE"), key=signing_key("other"))
    assert forged.status_code == 401  # fetched for this one: the signature is still checked
    for status in ("LIVE", "IDLE", "LIVE"):
        answer = provider.deliver(status_update(livestream_id, status))
        assert answer.status_code == 200, answer.text
    assert key_server.fetches == 1


def test_a_rotated_key_is_fetched_again_at_most_every_five_minutes(
    settings, started, key_server
) -> None:
    clock = Clock()
    provider = _fetching(settings, key_server.url, clock)
    _, livestream_id = started()
    assert provider.deliver(status_update(livestream_id, "LIVE")).status_code == 200
    assert key_server.fetches == 1

    rotated = signing_key("rotated")
    key_server.pem = public_pem(rotated)
    clock.now += 60
    early = provider.deliver(status_update(livestream_id, "IDLE"), key=rotated)
    assert early.status_code == 401 and key_server.fetches == 1  # fetched a minute ago

    clock.now += 240
    later = provider.deliver(status_update(livestream_id, "IDLE"), key=rotated)
    assert later.status_code == 200, later.text
    assert key_server.fetches == 2
    again = provider.deliver(status_update(livestream_id, "LIVE"), key=rotated)
    assert again.status_code == 200 and key_server.fetches == 2


@pytest.mark.parametrize("trouble", ["refused", "500", "not json", "no key", "not a key"])
def test_no_key_to_be_had_is_503_and_nothing_changes(
    settings, started, key_server, trouble
) -> None:
    url = key_server.url
    if trouble == "refused":
        url = f"http://127.0.0.1:{free_port()}/.well-known/webhooks.json"
    elif trouble == "500":
        key_server.status = 500
    elif trouble == "not json":
        key_server.body = b"<html>maintenance</html>"
    elif trouble == "no key":
        key_server.body = b'{"success": false, "data": null, "message": "nope"}'
    else:
        key_server.pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    provider = _fetching(settings, url)
    _, livestream_id = started()
    before = dump(settings.database_url)
    answer = provider.deliver(status_update(livestream_id, "LIVE", streamKey=SECRET))
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert SECRET not in answer.text
    assert dump(settings.database_url) == before


def test_after_a_failed_fetch_it_is_tried_again_once_the_pause_is_over(
    settings, started, key_server
) -> None:
    clock = Clock()
    key_server.status = 502
    provider = _fetching(settings, key_server.url, clock)
    _, livestream_id = started()
    assert provider.deliver(status_update(livestream_id, "LIVE")).status_code == 503
    assert provider.deliver(status_update(livestream_id, "LIVE")).status_code == 503
    assert key_server.fetches == 1  # the second was answered without asking again
    key_server.status = 200
    clock.now += 11
    assert provider.deliver(status_update(livestream_id, "LIVE")).status_code == 200
    assert key_server.fetches == 2


def test_a_missing_signature_is_refused_without_fetching_the_key(settings, key_server) -> None:
    provider = _fetching(settings, key_server.url)
    answer = provider.client.post(PATH, content=encode(status_update("ls-1", "LIVE")))
    assert answer.status_code == 401 and key_server.fetches == 0


# What ops see: `livestreams status` and /v1/status.


def test_status_counts_the_last_hours_deliveries_by_result(
    provider, keyed, env, started, monkeypatch
) -> None:
    _, livestream_id = started()
    provider.deliver(status_update(livestream_id, "LIVE", updatedAt=at(10)[0]))
    provider.deliver(status_update(livestream_id, "IDLE", updatedAt=at(20)[0]))
    provider.deliver(status_update("ls-nobody", "LIVE"))
    provider.deliver({"event": "meeting.started"})
    provider.deliver({"event": "meeting.ended"}, delivery="d-old")
    with get_sessionmaker(keyed.database_url).begin() as s:  # out of the last hour
        s.execute(
            update(ProviderWebhook)
            .where(ProviderWebhook.delivery_id == "d-old")
            .values(received_at=db_now(s) - timedelta(hours=2))
        )
    expected = {"applied": 1, "stale": 1, "unknown_stream": 1, "ignored": 1}

    api = Api(keyed)
    answer = api.client.get("/v1/status", headers=api.auth("ops"))
    data = answer.json()
    assert data["provider_webhooks"] == expected
    last = datetime.fromisoformat(data["last_provider_webhook_at"])
    assert abs((datetime.now(UTC) - last).total_seconds()) < 30

    result = CliRunner().invoke(cli, ["status", "--json"])
    assert json.loads(result.output)["provider_webhooks"] == expected
    text = CliRunner().invoke(cli, ["status"]).output
    assert "provider webhooks, last hour: applied=1  stale=1  unknown_stream=1  ignored=1" in text


def test_status_with_no_deliveries_says_never(settings) -> None:
    result = CliRunner().invoke(cli, ["status", "--json"])
    data = json.loads(result.output)
    assert data["provider_webhooks"] == {
        "applied": 0,
        "stale": 0,
        "unknown_stream": 0,
        "ignored": 0,
    }
    assert data["last_provider_webhook_at"] is None
    assert "(last never)" in CliRunner().invoke(cli, ["status"]).output


# Two replicas given the same delivery at once (PostgreSQL: the real concurrent case).


def test_the_same_delivery_at_two_replicas_at_once_is_applied_once(pg_url) -> None:
    settings = Settings(
        database_url=pg_url, upstream=Upstream(account_id="acct-race", app_id="app-race")
    )
    factory = get_sessionmaker(pg_url)
    with factory.begin() as s:
        at = datetime.now(UTC) + timedelta(hours=1)
        stream = booking.schedule(s, settings, meeting_id=str(uuid.uuid4()), at=at).stream
        s.flush()
        s.execute(
            update(ScheduledStream)
            .where(ScheduledStream.id == stream.id)
            .values(state=StreamState.STARTED.value, livestream_id="ls-race")
        )
    delivery = Delivery(
        "livestreaming.statusUpdate", "ls-race", "LIVE", datetime.now(UTC) - timedelta(seconds=1)
    )
    results: list[str] = []
    first = factory()
    results.append(deliveries.receive(first, "d-race", delivery).result.value)

    def second() -> None:
        with factory.begin() as s:
            results.append(deliveries.receive(s, "d-race", delivery).result.value)

    racer = threading.Thread(target=second)
    racer.start()
    racer.join(0.5)
    assert racer.is_alive(), "the second replica did not wait for the first's transaction"
    first.commit()
    first.close()
    racer.join(10)
    assert results == ["applied", "duplicate"]
    assert [r.result for r in webhook_rows(settings)] == ["applied"]
    assert [e[0] for e in timeline(settings, stream.id)] == ["LIVE"]
