"""`livestreams serve` parses its options and refuses a bad setting before uvicorn starts."""

from __future__ import annotations

import pytest
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


@pytest.mark.parametrize(
    ("env", "said"),
    [
        # A server database and no key: the stream-key reveal and ops sign-in would answer 500.
        ({}, "LIVESTREAMS_SECRET_KEY is not set"),
        ({"LIVESTREAMS_SECRET_KEY": "short"}, "LIVESTREAMS_SECRET_KEY: each key must be"),
        ({"LIVESTREAMS_DATABASE_URL": "mysql://app@db/x"}, "LIVESTREAMS_DATABASE_URL: cannot use"),
    ],
)
def test_serve_refuses_to_start_without_what_it_needs(env, said, monkeypatch) -> None:
    ran = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: ran.append(a))
    monkeypatch.setenv("LIVESTREAMS_DATABASE_URL", "postgresql://app@db.invalid/livestreams")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2 and ran == []
    assert result.stderr.startswith(f"livestreams: error: {said}")
    assert len(result.stderr.splitlines()) == 1


def test_serve_on_sqlite_makes_its_key_file_as_a_worker_does(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: None)
    monkeypatch.setenv("LIVESTREAMS_DATABASE_URL", f"sqlite:///{tmp_path / 'l.db'}")
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "l.db.key").exists()


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
