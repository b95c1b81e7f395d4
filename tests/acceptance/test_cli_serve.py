"""`livestreams serve` parses its options and refuses a bad setting before uvicorn starts."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx
import uvicorn
from click.testing import CliRunner

from tests.processes import Celery
from worker.cli import cli
from worker.crypto import new_key
from worker.migrate import upgrade
from worker.processes import free_port


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


def test_serve_with_workers_answers_keep_alive_requests_without_a_nagle_stall(tmp_path) -> None:
    """uvicorn's --workers listener lost TCP_NODELAY: each keep-alive request waited ~40 ms."""
    url = f"sqlite:///{tmp_path / 'livestreams.db'}"
    upgrade(url)
    env = {"LIVESTREAMS_DATABASE_URL": url, "LIVESTREAMS_SECRET_KEY": new_key()}
    port = free_port()
    with Celery(env, Path(tmp_path)) as procs:
        procs.serve("serve", port, workers=2)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            took = []
            for _ in range(30):
                started = time.perf_counter()
                assert client.get("/healthz").status_code == 200
                took.append(time.perf_counter() - started)
    assert statistics.median(took[1:]) < 0.02, took
