"""`livestreams serve` parses its options and refuses a bad setting before uvicorn starts."""

from __future__ import annotations

import uvicorn
from click.testing import CliRunner

from tests.processes import free_port
from worker.cli import cli


def test_serve_runs_uvicorn_with_the_factory_import_string(env, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    result = CliRunner().invoke(cli, ["serve", "--port", "8123", "--workers", "3"])
    assert result.exit_code == 0, result.output
    ((args, kwargs),) = calls
    assert args == ("worker.http.app:app_from_env",)
    assert kwargs["factory"] is True and kwargs["workers"] == 3 and kwargs["port"] == 8123
    assert kwargs["host"] == "127.0.0.1"
    # The product's own loggers too: each stream-key reveal writes an audit line at INFO.
    assert kwargs["log_config"]["loggers"]["worker"]["level"] == "INFO"


def test_serve_with_a_bad_setting_exits_2_in_one_line(monkeypatch) -> None:
    monkeypatch.setenv("LIVESTREAMS_DISPATCH_INTERVAL", "often")
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    assert result.stderr.startswith("livestreams: error: LIVESTREAMS_DISPATCH_INTERVAL")


def test_serve_with_workers_sets_tcp_nodelay_on_each_connection() -> None:
    """uvicorn's --workers listener lost TCP_NODELAY (uvicorn#3149): Nagle's algorithm met
    the client's delayed ACK and each keep-alive request waited ~40 ms. With the listener
    serve binds, every accepted connection has TCP_NODELAY set."""
    import asyncio
    import socket

    from uvicorn.config import Config

    from worker.cli.api import _listen_as_tcp

    _listen_as_tcp()
    listener = Config(app="worker.http.app:app_from_env", host="127.0.0.1", port=free_port())
    sock = listener.bind_socket()
    nodelay: list[int] = []

    async def accept_one() -> None:
        def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted = writer.get_extra_info("socket")
            nodelay.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        for _ in range(100):
            if nodelay:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(accept_one())
    assert sock.proto == socket.IPPROTO_TCP
    assert nodelay == [1]


def test_serve_passes_the_proxies_to_trust_to_uvicorn(env, monkeypatch) -> None:
    """Behind a TLS proxy on another host, uvicorn trusted X-Forwarded-Proto from 127.0.0.1
    only: the scheme stayed http and the ops page's cookies lost Secure."""
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    given = ["serve", "--forwarded-allow-ips", "10.0.0.0/8,192.168.1.5"]
    assert CliRunner().invoke(cli, given).exit_code == 0
    monkeypatch.setenv("LIVESTREAMS_FORWARDED_ALLOW_IPS", "*")
    assert CliRunner().invoke(cli, ["serve", "--no-proxy-headers"]).exit_code == 0
    first, second = calls
    assert first["forwarded_allow_ips"] == "10.0.0.0/8,192.168.1.5"
    assert first["proxy_headers"] is True
    assert second["forwarded_allow_ips"] == "*" and second["proxy_headers"] is False


def test_behind_a_trusted_proxy_the_ops_cookies_are_secure(settings) -> None:
    from fastapi.testclient import TestClient
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from tests.ops_page import csrf_of
    from worker.http.app import create_app

    proxied = ProxyHeadersMiddleware(create_app(settings), trusted_hosts="testclient")
    client = TestClient(proxied, follow_redirects=False)
    answer = client.get("/ops/sign-in", headers={"x-forwarded-proto": "https"})
    assert "secure" in answer.headers["set-cookie"].lower()
    assert csrf_of(answer.text)
