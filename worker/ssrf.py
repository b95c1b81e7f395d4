"""The SSRF guard: webhook URLs must lead to the public internet.

A URL is refused when any address its host resolves to is loopback, private, link-local,
a cloud metadata address, or otherwise not globally routable; at registration and again before
each delivery (DNS may have changed since). LIVESTREAMS_WEBHOOKS_ALLOW_PRIVATE=1 lifts it for
the demo and the tests, whose receivers listen on loopback.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from worker.errors import UnsafeWebhookURL

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# Cloud instance metadata services: AWS (IPv4 and IPv6), GCP and Azure share 169.254.169.254;
# Alibaba Cloud's 100.100.100.200; Oracle's 192.0.0.192.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)


def classify(address: Address) -> str | None:
    """Why ``address`` may not be sent to (None: it may). Pure."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
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


def check(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> None:
    """Refuse ``url`` unless every address of its host is public (or ``allow_private``)."""
    host, port = parse(url)
    if allow_private:
        return
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    try:
        found = [str(literal)] if literal is not None else resolver(host, port)
    except OSError:
        raise UnsafeWebhookURL("url", f"its host {host} does not resolve") from None
    for text in found:
        reason = classify(ipaddress.ip_address(text.split("%")[0]))
        if reason is not None:
            raise UnsafeWebhookURL(
                "url",
                f"its host {host} resolves to {text}, {reason}"
                " (LIVESTREAMS_WEBHOOKS_ALLOW_PRIVATE=1 allows it)",
            )
