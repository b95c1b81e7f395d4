"""`livestreams serve` parses its options and refuses a bad setting before uvicorn starts."""

from __future__ import annotations

import uvicorn
from click.testing import CliRunner

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
