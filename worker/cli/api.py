"""`livestreams api-key ...` and `livestreams serve`: the HTTP app's commands."""

from __future__ import annotations

import copy
import socket
from typing import Any

import click

from models.db import db_now
from worker import logformat
from worker.bookings.present import api_key_dict, render_api_key
from worker.cli.tools import (
    EXIT_BAD_INPUT,
    Failure,
    current_settings,
    emit,
    handle_errors,
    json_option,
    session_scope,
)
from worker.crypto import cipher_for
from worker.errors import SecretKeyError
from worker.http import apikeys


@click.group("api-key")
def api_key() -> None:
    """API keys for the HTTP app (`livestreams serve`); only their hash is stored."""


@api_key.command("create")
@click.option("--name", required=True, help="A unique name: who or what uses the key.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help=f"Repeatable, or comma-separated: {', '.join(apikeys.SCOPES)} "
    "(ops includes bookings:read and bookings:write, not stream-keys:read).",
)
@click.option("--expires", help="An ISO 8601 instant with an offset, or a duration: 90d, 12h.")
@json_option
@handle_errors
def create(name: str, scopes: tuple[str, ...], expires: str | None, as_json: bool) -> None:
    """Make a key and print it: it is shown this once and cannot be shown again."""
    settings = current_settings()
    with session_scope(settings) as session:
        row, key = apikeys.create(session, name=name, scopes=scopes, expires=expires)
        data = api_key_dict(row, db_now(session))
    emit(
        as_json,
        {**data, "key": key},
        f"{key}\n(API key {data['name']!r}: store it now, it is not shown again)",
    )


@api_key.command("list")
@json_option
@handle_errors
def list_command(as_json: bool) -> None:
    """Every API key, by creation time (prefixes only, never the keys)."""
    settings = current_settings()
    with session_scope(settings) as session:
        now = db_now(session)
        rows = [api_key_dict(k, now) for k in apikeys.list_keys(session)]
    emit(as_json, rows, "\n".join(render_api_key(r) for r in rows) or "no API keys")


@api_key.command("revoke")
@click.argument("name_or_id")
@json_option
@handle_errors
def revoke(name_or_id: str, as_json: bool) -> None:
    """Revoke a key by name or id, for good: requests with it get 401 from now on."""
    settings = current_settings()
    with session_scope(settings) as session:
        row = apikeys.revoke(session, name_or_id)
        data = api_key_dict(row, db_now(session))
    emit(as_json, data, f"revoked {data['name']} ({data['prefix']}…) at {data['revoked_at']}")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--proxy-headers/--no-proxy-headers",
    default=True,
    show_default=True,
    help="Take the client's address and scheme from X-Forwarded-For/-Proto, when the peer is "
    "one of --forwarded-allow-ips.",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    envvar="LIVESTREAMS_FORWARDED_ALLOW_IPS",
    show_envvar=True,
    help="Comma-separated addresses or networks of the TLS proxies or load balancers in "
    "front (or '*' where only they can reach this port). Behind a proxy on another host, the "
    "ops page's cookies are Secure only when that proxy is listed here.",
)
@handle_errors
def serve(
    host: str, port: int, workers: int, proxy_headers: bool, forwarded_allow_ips: str
) -> None:
    """Serve the HTTP API (/v1, /healthz, /openapi.json) with uvicorn."""
    import uvicorn

    # A bad setting stops here with one line, not in each worker process; so does a missing or
    # unusable LIVESTREAMS_SECRET_KEY (as a worker refuses): the stream-key reveal and the ops
    # page's sessions need it, and a SQLite database gets its key file made, as a worker makes it.
    settings = current_settings()
    try:
        cipher_for(settings, create=True)
    except SecretKeyError as exc:
        raise Failure(str(exc), EXIT_BAD_INPUT) from None
    _listen_as_tcp()
    # An import string, not an app object: uvicorn can only start --workers processes from
    # one, and each process then builds its own engine and pool (no connections across fork).
    uvicorn.run(
        "worker.http.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level="info",
        log_config=_log_config(),
    )


def _log_config() -> dict[str, Any]:
    """uvicorn's logging plus the product's loggers (``worker.*``) at INFO on its handler.

    Without them a served process logs nothing of its own: not even the audit line that each
    stream-key reveal writes (worker.http.bookings), which uvicorn alone would drop.
    """
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["worker"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    if current_settings().log_format == logformat.JSON:
        json_formatter = {"()": "worker.logformat.JsonFormatter"}
        config["formatters"] = {name: json_formatter for name in config["formatters"]}
    return config


def _listen_as_tcp() -> None:
    """Make uvicorn's --workers listener say it is TCP, so each connection gets TCP_NODELAY.

    With --workers above 1, uvicorn binds the listener itself with ``proto`` 0; accepted
    sockets inherit it and asyncio sets TCP_NODELAY only on ``IPPROTO_TCP`` ones. Nagle's
    algorithm then meets the client's delayed ACK: every keep-alive request after the first
    waited ~40 ms (/healthz 44 ms instead of 1 ms; uvicorn issue #3149, open). The same
    socket, re-wrapped with the protocol it has; a no-op once uvicorn sets it itself.
    """
    from uvicorn.config import Config

    bind = Config.bind_socket
    if bind.__name__ == "bind_tcp":
        return  # done already in this process (tests invoke serve more than once)

    def bind_tcp(config: Config) -> socket.socket:
        sock = bind(config)
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.proto != 0:
            return sock
        return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())

    Config.bind_socket = bind_tcp  # type: ignore[method-assign,assignment]
