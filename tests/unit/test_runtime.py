"""The per-process runtime: built once, and again in a forked child."""

from __future__ import annotations

from worker import runtime


def test_the_runtime_is_built_once_per_process_and_again_after_a_fork(monkeypatch):
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "t")
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", "http://127.0.0.1:9/client/v4")
    runtime.install(None)
    try:
        first = runtime.current()
        assert runtime.current() is first
        assert first.starter.client is first.client
        monkeypatch.setattr(runtime.os, "getpid", lambda: -1)  # as a forked child sees it
        child = runtime.current()
        assert child is not first and child.client is not first.client
        assert runtime.current() is child
    finally:
        runtime.install(None)
