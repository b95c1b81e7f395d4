"""Outbound webhooks' pure decisions, as tables: answer -> next step, retry delays, the SSRF
classification, and signatures checked by the independent `standardwebhooks` library."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import httpcore
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from worker.errors import UnsafeWebhookURL
from worker.notify import signing as webhook_signing
from worker.notify import ssrf
from worker.notify.rules import SCHEDULE, DeliveryStep, decide, delay_after
from worker.settings import Secret


def mid() -> float:
    return 0.5  # no jitter


@pytest.mark.parametrize(
    ("status", "error", "attempts", "expected"),
    [
        (200, None, 1, DeliveryStep.DELIVERED),
        (204, None, 9, DeliveryStep.DELIVERED),
        (299, None, 10, DeliveryStep.DELIVERED),
        (410, None, 1, DeliveryStep.DISABLE),
        (410, None, 10, DeliveryStep.DISABLE),
        (400, None, 1, DeliveryStep.RETRY),
        (404, None, 1, DeliveryStep.RETRY),
        (429, None, 3, DeliveryStep.RETRY),
        (500, None, 1, DeliveryStep.RETRY),
        (503, None, 9, DeliveryStep.RETRY),
        (301, None, 1, DeliveryStep.RETRY),  # redirects are not followed
        (None, "ConnectError: refused", 1, DeliveryStep.RETRY),
        (None, "timed out", 9, DeliveryStep.RETRY),
        (500, None, 10, DeliveryStep.GIVE_UP),
        (None, "timed out", 10, DeliveryStep.GIVE_UP),
    ],
)
def test_what_an_answer_means(status, error, attempts, expected) -> None:
    assert decide(status, error, attempts, mid).next is expected


@pytest.mark.parametrize("attempts", [1, 5, 10])
def test_a_refusal_by_the_ssrf_guard_is_never_retried(attempts) -> None:
    decision = decide(None, "refused: its host resolves to ::7f00:1", attempts, mid, refused=True)
    assert decision.next is DeliveryStep.GIVE_UP and decision.delay is None
    assert "::7f00:1" in (decision.reason or "") and "not retried" in (decision.reason or "")


def test_a_retry_names_its_reason() -> None:
    assert decide(503, None, 1, mid).reason == "HTTP 503"
    assert decide(None, "ConnectError: x", 1, mid).reason == "ConnectError: x"
    assert "gave up after 10 attempts" in (decide(500, None, 10, mid).reason or "")


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [(1, 5.0), (2, 300.0), (3, 1800.0), (4, 7200.0), (5, 18000.0), (6, 36000.0),
     (7, 50400.0), (8, 72000.0), (9, 86400.0), (10, None), (0, None)],
)  # fmt: skip
def test_the_schedule_without_jitter(attempts, expected) -> None:
    assert delay_after(attempts, mid) == expected


@pytest.mark.parametrize("attempts", range(1, len(SCHEDULE) + 1))
def test_jitter_stays_within_ten_percent_and_above_the_floor(attempts) -> None:
    base = SCHEDULE[attempts - 1]
    low, high = delay_after(attempts, lambda: 0.0), delay_after(attempts, lambda: 0.999999)
    assert low is not None and high is not None
    assert base * 0.9 - 1e-9 <= low < base < high <= base * 1.1
    assert low >= 1.0


def test_the_whole_schedule_is_about_three_days() -> None:
    assert 3 * 86400 < sum(SCHEDULE) < 3.2 * 86400


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12::1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
        # IPv6 forms that carry an IPv4 address are judged by it (NAT64, 6to4, compatible,
        # translated): behind a NAT64 gateway 64:ff9b::7f00:1 is 127.0.0.1.
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "metadata"),
        ("64:ff9b::a00:1", "private"),
        ("2002:7f00:1::", "loopback"),
        ("2002:a9fe:a9fe::1", "metadata"),
        ("2002:a00:1::", "private"),
        ("::7f00:1", "loopback"),
        ("::a9fe:a9fe", "metadata"),
        ("::a00:1", "private"),
        ("::ffff:0:7f00:1", "loopback"),
        ("::ffff:0:a9fe:a9fe", "metadata"),
        ("::ffff:0:a00:1", "private"),
        ("64:ff9b:1::a00:1", "NAT64"),
        ("64:ff9b::808:808", None),  # NAT64 to a public address is public
        ("2002:808:808::1", None),
        ("0.0.0.0", "unicast"),
        ("224.0.0.1", "unicast"),
        ("100.64.0.1", "not a public"),  # carrier-grade NAT
        ("93.184.216.34", None),
        ("2606:4700::1111", None),
        ("1.1.1.1", None),
    ],
)
def test_which_addresses_are_refused(address, refused) -> None:
    reason = ssrf.classify(ipaddress.ip_address(address))
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


def resolves_to(*addresses: str) -> ssrf.Resolver:
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    ("url", "addresses", "ok"),
    [
        ("https://hooks.example.com/in", ("93.184.216.34",), True),
        ("https://hooks.example.com/in", ("93.184.216.34", "10.0.0.5"), False),  # any one
        ("http://internal.example/in", ("192.168.0.10",), False),
        ("http://127.0.0.1:8080/in", (), False),  # a literal is not resolved
        ("http://[::1]/in", (), False),
        ("http://169.254.169.254/latest/meta-data", (), False),
        ("ftp://hooks.example.com/in", ("93.184.216.34",), False),
        ("https://user:pw@hooks.example.com/in", ("93.184.216.34",), False),
        ("hooks.example.com/in", ("93.184.216.34",), False),
    ],
)
def test_urls_are_checked_by_every_address(url, addresses, ok) -> None:
    if ok:
        ssrf.check(url, allow_private=False, resolver=resolves_to(*addresses))
    else:
        with pytest.raises(UnsafeWebhookURL):
            ssrf.check(url, allow_private=False, resolver=resolves_to(*addresses))


@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::7f00:1]/in",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
        "http://[2002:a00:1::]/in",
        "http://[::7f00:1]/in",
        "http://[::ffff:0:a9fe:a9fe]/in",
    ],
)
def test_a_url_whose_literal_carries_a_refused_ipv4_is_refused_at_registration(url) -> None:
    with pytest.raises(UnsafeWebhookURL, match="embedded in"):
        ssrf.check(url, allow_private=False, resolver=resolves_to())


def test_allow_private_lets_loopback_through_but_not_other_schemes() -> None:
    ssrf.check("http://127.0.0.1:9/in", allow_private=True, resolver=resolves_to())
    with pytest.raises(UnsafeWebhookURL):
        ssrf.check("file:///etc/passwd", allow_private=True)


def test_a_host_that_does_not_resolve_is_refused() -> None:
    def fails(host: str, port: int) -> list[str]:
        raise OSError("nope")

    with pytest.raises(UnsafeWebhookURL, match="does not resolve"):
        ssrf.check("https://nowhere.invalid/", allow_private=False, resolver=fails)


class Recording(httpcore.NetworkBackend):
    """An inner backend that records where it was asked to connect; the first ``fail``
    addresses refuse the connection."""

    def __init__(self, fail: int = 0) -> None:
        self.asked: list[str] = []
        self.fail = fail

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.asked.append(host)
        if len(self.asked) <= self.fail:
            raise httpcore.ConnectError("refused")
        return httpcore.MockStream([])


def test_the_delivery_connects_to_the_address_it_checked_and_looks_it_up_once() -> None:
    lookups: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:  # public once, then loopback
        lookups.append(host)
        return ["93.184.216.34"] if len(lookups) == 1 else ["127.0.0.1"]

    inner = Recording()
    ssrf.GuardedBackend(rebinding, inner).connect_tcp("hooks.example.com", 443)
    assert inner.asked == ["93.184.216.34"] and lookups == ["hooks.example.com"]


@pytest.mark.parametrize(
    ("host", "addresses", "refused"),
    [
        ("hooks.example.com", ("93.184.216.34", "10.0.0.5"), "10.0.0.5, a private"),
        ("hooks.example.com", ("169.254.169.254",), "metadata"),
        ("hooks.example.com", (), "does not resolve"),
        ("127.0.0.1", (), "loopback"),  # a literal is checked, not resolved
        ("::ffff:10.1.2.3", (), "private"),
        ("64:ff9b::7f00:1", (), "loopback"),
        ("hooks.example.com", ("2002:a9fe:a9fe::",), "metadata"),
        ("hooks.example.com", ("::a00:5",), "private"),
        ("hooks.example.com", ("::ffff:0:7f00:1",), "loopback"),
    ],
)
def test_a_connection_to_a_refused_address_is_never_opened(host, addresses, refused) -> None:
    inner = Recording()
    with pytest.raises(UnsafeWebhookURL, match=refused):
        ssrf.GuardedBackend(resolves_to(*addresses), inner).connect_tcp(host, 443)
    assert inner.asked == []


def test_the_next_checked_address_is_tried_when_a_connect_fails() -> None:
    inner = Recording(fail=1)
    backend = ssrf.GuardedBackend(resolves_to("93.184.216.34", "93.184.216.35"), inner)
    backend.connect_tcp("hooks.example.com", 443)
    assert inner.asked == ["93.184.216.34", "93.184.216.35"]
    with pytest.raises(httpcore.ConnectError):
        ssrf.GuardedBackend(resolves_to("93.184.216.34"), Recording(fail=1)).connect_tcp(
            "hooks.example.com", 443
        )


def test_a_unix_socket_is_refused() -> None:
    with pytest.raises(UnsafeWebhookURL):
        ssrf.GuardedBackend(resolves_to()).connect_unix_socket("/var/run/docker.sock")


BODY = b'{"id":"e1","type":"booking.started","data":{"booking_id":"b"}}'


def test_a_signature_verifies_with_the_reference_library() -> None:
    secret = webhook_signing.new_secret()
    assert secret.get().startswith("whsec_")
    now = int(datetime.now(UTC).timestamp())
    headers = webhook_signing.headers("msg_1", now, BODY, [secret])
    assert Webhook(secret.get()).verify(BODY, headers) is not None


def test_during_a_rotation_either_secret_verifies_and_a_stranger_does_not() -> None:
    new, old = webhook_signing.new_secret(), webhook_signing.new_secret()
    now = int(datetime.now(UTC).timestamp())
    headers = webhook_signing.headers("msg_2", now, BODY, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new.get()).verify(BODY, headers)
    Webhook(old.get()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhook_signing.new_secret().get()).verify(BODY, headers)


def test_a_changed_body_id_or_timestamp_fails_verification() -> None:
    secret = webhook_signing.new_secret()
    now = int(datetime.now(UTC).timestamp())
    headers = webhook_signing.headers("msg_3", now, BODY, [secret])
    hook = Webhook(secret.get())
    with pytest.raises(WebhookVerificationError):
        hook.verify(BODY + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        hook.verify(BODY, {**headers, "webhook-id": "msg_4"})
    with pytest.raises(WebhookVerificationError):
        hook.verify(BODY, {**headers, "webhook-timestamp": str(now - 1)})


def test_the_known_answer_of_the_standard() -> None:
    # The example of the Standard Webhooks specification (and of the reference library's
    # tests): this secret, id, timestamp and body sign to this value.
    secret = Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    signed = webhook_signing.signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, secret)
    assert signed == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
