"""The SSRF guard: webhook URLs must lead to the public internet.

A URL is refused when any address its host resolves to is loopback, private, link-local,
a cloud metadata address, or otherwise not globally routable; at registration (:func:`check`)
and again at every connection a delivery opens (:class:`GuardedBackend`). The second check is
made on the very answer the socket connects to: the host is resolved once, each address is
checked, and the connection goes to a checked address, while the URL, the Host header and
the TLS server name stay the host's. A name that resolved to a public address when it was
checked and to 10.0.0.5 a second later (DNS rebinding) cannot slip through between a check
and httpx's own lookup, because there is no second lookup. LIVESTREAMS_WEBHOOKS_ALLOW_PRIVATE=1
lifts the guard for the demo and the tests, whose receivers listen on loopback.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from worker.errors import UnsafeWebhookURL

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# Cloud instance metadata services: AWS (IPv4 and IPv6), GCP and Azure share 169.254.169.254;
# Alibaba Cloud's 100.100.100.200; Oracle's 192.0.0.192.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)


# IPv6 forms that carry an IPv4 address in their low 32 bits: a NAT64 gateway (RFC 6052's
# well-known prefix), or a host that still speaks the deprecated IPv4-compatible (RFC 4291
# 2.5.5.1) or IPv4-translated (RFC 2765) forms, delivers to that IPv4 address, so each is
# judged by it: 64:ff9b::7f00:1 is 127.0.0.1 behind NAT64.
EMBEDDING = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96"))
# RFC 8215's local-use NAT64 prefix: where in it the IPv4 address sits is the operator's
# choice, so no address in it is sent to.
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, compatible, translated),
    or None. Pure."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:  # 2002:AABB:CCDD::/48 routes to AA.BB.CC.DD
        return address.sixtofour
    if int(address) <= 1:  # :: and ::1 are unspecified and loopback themselves
        return None
    if any(address in net for net in EMBEDDING):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify(address: Address) -> str | None:
    """Why ``address`` may not be sent to (None: it may). An IPv6 address that carries an IPv4
    one is judged by the IPv4 address (:func:`embedded_ipv4`). Pure."""
    if address in LOCAL_NAT64:
        return "a local-use NAT64 address"
    embedded = embedded_ipv4(address)
    if embedded is not None:
        reason = classify(embedded)
        return None if reason is None else f"{reason} (embedded in {address})"
    if address in METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified or address.is_multicast:
        return "not a unicast address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


def parse(url: str) -> tuple[str, int]:
    """The host and port of an http(s) URL; UnsafeWebhookURL if it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeWebhookURL("url", "must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise UnsafeWebhookURL("url", "must not carry credentials (use the signature)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeWebhookURL("url", "has a bad port") from None
    return parts.hostname, port


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system resolver)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def addresses(host: str, port: int, *, resolver: Resolver = resolve) -> list[str]:
    """Every address of ``host``, each one allowed; UnsafeWebhookURL names the first that is
    not (one bad answer refuses the host: an attacker's name may mix them)."""
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    try:
        found = [str(literal)] if literal is not None else resolver(host, port)
    except OSError:
        raise UnsafeWebhookURL("url", f"its host {host} does not resolve") from None
    if not found:
        raise UnsafeWebhookURL("url", f"its host {host} does not resolve")
    for text in found:
        reason = classify(ipaddress.ip_address(text.split("%")[0]))
        if reason is not None:
            raise UnsafeWebhookURL(
                "url",
                f"its host {host} resolves to {text}, {reason}"
                " (LIVESTREAMS_WEBHOOKS_ALLOW_PRIVATE=1 allows it)",
            )
    return found


def check(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> None:
    """Refuse ``url`` unless every address of its host is public (or ``allow_private``)."""
    host, port = parse(url)
    if not allow_private:
        addresses(host, port, resolver=resolver)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network backend, connecting only to addresses :func:`addresses` allows.

    httpcore hands it the URL's host; it resolves that once, checks every answer, and opens
    the TCP connection to a checked address (the next one if a connect fails). TLS is then
    started by httpcore with the host as server name, so certificates are verified for the
    host, and pooled connections stay keyed by the host. Unix sockets are refused.
    """

    def __init__(
        self, resolver: Resolver = resolve, inner: httpcore.NetworkBackend | None = None
    ) -> None:
        self.resolver = resolver
        self.inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        failed: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses(host, port, resolver=self.resolver):
            try:
                return self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )  # fmt: skip
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failed = exc
        assert failed is not None  # addresses() returns at least one
        raise failed

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise UnsafeWebhookURL("url", "must be an http:// or https:// URL with a host")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def transport(*, allow_private: bool, resolver: Resolver = resolve) -> httpx.HTTPTransport:
    """An httpx transport whose every connection passes the guard (unless ``allow_private``).

    httpx takes no network backend of its own, so the transport's pool is rebuilt with one;
    the rest is httpx's defaults (certificate checks on, no proxy from the environment: a
    proxy would resolve the name itself, out of the guard's sight)."""
    made = httpx.HTTPTransport(trust_env=False)
    if not allow_private:
        made._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,  # httpx's default limits
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(resolver),
        )
    return made
