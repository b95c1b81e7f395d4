"""Reading a provider webhook and checking its signature: pure functions, tables of inputs;
the key cache with a fake fetch and a fake clock."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime

import pytest

from tests.webhook_signing import public_pem, sign, signing_key
from worker.errors import BadDelivery, BadSignature, SettingsError, WebhookKeyUnavailable
from worker.inbound.intake import IntakeResult, expected
from worker.inbound.signature import (
    STATUS_UPDATE,
    Delivery,
    WebhookKeys,
    decode_signature,
    delivery_key,
    load_public_key,
    parse_delivery,
    parse_instant,
    parse_key_document,
    signature_valid,
)
from worker.settings import Settings

STORED = "holds characters that cannot be stored (NUL, lone surrogates)"
UPDATE = {"event": STATUS_UPDATE, "streamId": "ls-1", "status": "LIVE", "streamKey": "sk_SECRET"}


@pytest.mark.parametrize(
    ("payload", "delivery"),
    [
        (
            {**UPDATE, "updatedAt": "2026-11-29T10:00:00.123Z"},
            Delivery(STATUS_UPDATE, "ls-1", "LIVE", datetime(2026, 11, 29, 10, 0, 0, 123000, UTC)),
        ),
        (UPDATE, Delivery(STATUS_UPDATE, "ls-1", "LIVE", None)),
        ({**UPDATE, "status": "WHATEVER_NEXT"}, Delivery(STATUS_UPDATE, "ls-1", "WHATEVER_NEXT")),
        ({"event": "meeting.started", "meetingId": "m"}, Delivery("meeting.started")),
        # Other events need no streamId or status.
        ({"event": "livestreaming.other", "status": 3}, Delivery("livestreaming.other")),
    ],
)
def test_parse_delivery_keeps_what_we_use_and_never_the_key(payload, delivery) -> None:
    parsed = parse_delivery(json.dumps(payload).encode())
    assert parsed == delivery
    assert "SECRET" not in repr(parsed)


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        (b"", "body", "is not JSON"),
        (b"{", "body", "is not JSON"),
        (b"\xff\xfe\x00", "body", "is not JSON"),
        (b"[" * 100_000, "body", "is not JSON"),
        (b"[]", "body", "must be a JSON object"),
        (b'"LIVE"', "body", "must be a JSON object"),
        (b"{}", "event", "is missing"),
        (b'{"event": ""}', "event", "must be a non-empty string"),
        (b'{"event": ["x"]}', "event", "must be a non-empty string"),
        (b'{"event": "livestreaming.statusUpdate", "status": "LIVE"}', "streamId", "is missing"),
        (
            b'{"event": "livestreaming.statusUpdate", "streamId": 12, "status": "LIVE"}',
            "streamId",
            "must be a non-empty string",
        ),
        (b'{"event": "livestreaming.statusUpdate", "streamId": "ls"}', "status", "is missing"),
        (b'{"event": "a\\u0000"}', "event", STORED),
        (
            b'{"event": "livestreaming.statusUpdate", "streamId": "\\ud800", "status": "LIVE"}',
            "streamId",
            STORED,
        ),
        (
            b'{"event": "livestreaming.statusUpdate", "streamId": "ls", "status": "LIVE\\u0000"}',
            "status",
            STORED,
        ),
        (
            b'{"event": "livestreaming.statusUpdate", "streamId": "ls", "status": {"a": 1}}',
            "status",
            "must be a non-empty string",
        ),
    ],
)
def test_parse_delivery_refuses_naming_the_field_never_a_value(body, field, problem) -> None:
    with pytest.raises(BadDelivery) as caught:
        parse_delivery(body)
    assert (caught.value.field, caught.value.problem) == (field, problem)


@pytest.mark.parametrize(
    ("value", "instant"),
    [
        ("2026-11-29T10:00:00.123Z", datetime(2026, 11, 29, 10, 0, 0, 123000, UTC)),
        ("2026-11-29T11:00:00+01:00", datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-29T10:00:00", datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)),  # naive: UTC
        ("2026-11-29", datetime(2026, 11, 29, tzinfo=UTC)),
        ("9999-12-31T23:59:59-01:00", None),  # past datetime's range in UTC
        ("yesterday", None),
        ("", None),
        (1764410400, None),
        (None, None),
    ],
)
def test_parse_instant(value, instant) -> None:
    assert parse_instant(value) == instant


def test_delivery_key() -> None:
    body = b'{"event": "x"}'
    assert delivery_key("1f0e6c3a-7d1b-4a7e-9a63-6d0c4e1b2a90", body) == (
        "1f0e6c3a-7d1b-4a7e-9a63-6d0c4e1b2a90"
    )
    assert delivery_key("  d-1 ", body) == "d-1"
    digest = f"sha256:{hashlib.sha256(body).hexdigest()}"[:64]
    assert delivery_key(None, body) == delivery_key("", body) == digest
    long = "x" * 65
    hashed = delivery_key(long, body)
    assert hashed == f"sha256:{hashlib.sha256(long.encode()).hexdigest()}"[:64]
    assert len(hashed) == 64 and hashed != digest
    assert delivery_key("x" * 64, body) == "x" * 64


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "no rtk-signature header"),
        ("", "no rtk-signature header"),
        ("   ", "no rtk-signature header"),
        ("abc$", "rtk-signature is not base64"),
        ("abc", "rtk-signature is not base64"),  # padding missing
        ("é", "rtk-signature is not base64"),
        ("====", "rtk-signature is not base64"),
    ],
)
def test_decode_signature_refuses(header, why) -> None:
    with pytest.raises(BadSignature, match=why):
        decode_signature(header)


def test_a_signature_holds_only_for_the_bytes_signed_and_the_key() -> None:
    body = json.dumps(UPDATE).encode()
    key = signing_key().public_key()
    signature = decode_signature(sign(body))
    assert signature_valid(key, body, signature)
    assert not signature_valid(key, body + b" ", signature)
    assert not signature_valid(key, json.dumps(UPDATE, indent=1).encode(), signature)
    assert not signature_valid(key, body, signature[:-1])
    assert not signature_valid(signing_key("other").public_key(), body, signature)


def test_load_public_key_takes_rsa_pem_only() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    assert load_public_key(public_pem(signing_key())).key_size == 2048
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    for pem in (ec_pem, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "x"):
        with pytest.raises(ValueError, match=r"not an? (RSA|PEM) public key"):
            load_public_key(pem)


@pytest.mark.parametrize(
    "content",
    [
        b"<html>",
        b"[]",
        b'{"success": false, "data": {"publicKey": "%s"}}',
        b'{"success": true, "data": {}}',
        b'{"success": true, "data": "k"}',
        b'{"success": true, "data": {"publicKey": "-----BEGIN PUBLIC KEY-----\\nAAAA"}}',
    ],
)
def test_parse_key_document_refuses_what_holds_no_key(content) -> None:
    with pytest.raises(WebhookKeyUnavailable):
        parse_key_document(content)


def test_parse_key_document_reads_the_provider_document() -> None:
    pem = public_pem(signing_key())
    document = json.dumps({"success": True, "data": {"publicKey": pem}, "message": ""})
    assert parse_key_document(document.encode()).public_numbers() == (
        signing_key().public_key().public_numbers()
    )


# The key cache: configured, or fetched once, again on rotation at most every 5 minutes.


class FakeSource:
    """The provider's key endpoint: serves ``key`` (or fails), counting fetches."""

    def __init__(self, name: str = "provider") -> None:
        self.name: str | None = name
        self.fetches = 0

    def __call__(self, url: str):
        self.fetches += 1
        if self.name is None:
            raise WebhookKeyUnavailable(f"cannot fetch {url}: ConnectError")
        return signing_key(self.name).public_key()


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


BODY = b'{"event": "livestreaming.statusUpdate"}'


def keys(source: FakeSource, clock: Clock) -> WebhookKeys:
    return WebhookKeys("https://example.test/.well-known/webhooks.json", fetch=source, clock=clock)


def test_a_configured_key_is_the_only_one_and_nothing_is_fetched() -> None:
    source = FakeSource()
    configured = WebhookKeys("u", given=signing_key("given").public_key(), fetch=source)
    configured.verify(BODY, sign(BODY, signing_key("given")))
    with pytest.raises(BadSignature):
        configured.verify(BODY, sign(BODY))
    assert source.fetches == 0


def test_the_key_is_fetched_on_first_need_then_kept() -> None:
    source, clock = FakeSource(), Clock()
    cache = keys(source, clock)
    with pytest.raises(BadSignature):
        cache.verify(BODY, None)
    assert source.fetches == 0  # nothing to check: no fetch
    for _ in range(3):
        cache.verify(BODY, sign(BODY))
        clock.now += 1000
    assert source.fetches == 1  # a key that verifies is never fetched again


def test_a_rotated_key_is_fetched_again_at_most_once_per_five_minutes() -> None:
    source, clock = FakeSource(), Clock()
    cache = keys(source, clock)
    cache.verify(BODY, sign(BODY))
    source.name = "rotated"
    rotated = sign(BODY, signing_key("rotated"))
    clock.now += 299
    with pytest.raises(BadSignature):
        cache.verify(BODY, rotated)
    assert source.fetches == 1
    clock.now += 1
    cache.verify(BODY, rotated)
    assert source.fetches == 2
    # A forgery right after: the fresh key says no, and no fetch is made for it.
    with pytest.raises(BadSignature):
        cache.verify(BODY, sign(BODY, signing_key("forger")))
    assert source.fetches == 2


def test_a_key_that_cannot_be_had_is_unavailable_and_not_asked_for_again_at_once() -> None:
    source, clock = FakeSource(), Clock()
    source.name = None
    cache = keys(source, clock)
    for _ in range(3):
        with pytest.raises(WebhookKeyUnavailable):
            cache.verify(BODY, sign(BODY))
    assert source.fetches == 1
    clock.now += 10
    source.name = "provider"
    cache.verify(BODY, sign(BODY))
    assert source.fetches == 2


def test_a_refresh_that_fails_is_unavailable_not_a_bad_signature() -> None:
    """A rotation we cannot confirm: 503 lets the provider retry; a 401 it would never."""
    source, clock = FakeSource(), Clock()
    cache = keys(source, clock)
    cache.verify(BODY, sign(BODY))
    source.name = None
    clock.now += 301
    with pytest.raises(WebhookKeyUnavailable):
        cache.verify(BODY, sign(BODY, signing_key("rotated")))
    cache.verify(BODY, sign(BODY))  # the kept key still serves meanwhile


def test_settings_refuse_a_configured_key_that_is_not_an_rsa_public_key(tmp_path) -> None:
    name = "LIVESTREAMS_RTK_WEBHOOK_PUBLIC_KEY"
    pem = public_pem(signing_key())
    assert Settings.from_env({name: pem}).webhooks.provider_public_key == pem.strip()
    path = tmp_path / "rtk.pem"
    path.write_text(pem)
    assert Settings.from_env({name: str(path)}).webhooks.provider_public_key == pem.strip()
    broken = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
    with pytest.raises(SettingsError, match=f"^{name}: must be an RSA public key"):
        Settings.from_env({name: broken})


@pytest.mark.parametrize(
    ("delivery", "found", "result"),
    [
        (Delivery("meeting.started"), False, IntakeResult.IGNORED),
        (Delivery("meeting.started"), True, IntakeResult.IGNORED),
        (Delivery(STATUS_UPDATE, "ls-1", "LIVE"), False, IntakeResult.UNKNOWN_STREAM),
        (Delivery(STATUS_UPDATE, "ls-1", "LIVE"), True, IntakeResult.APPLIED),
    ],
)
def test_what_a_first_delivery_comes_to(delivery, found, result) -> None:
    assert expected(delivery, uuid.uuid4() if found else None) is result
