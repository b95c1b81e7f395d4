"""The per-process runtime: built once, again in a forked child, beating while it starts."""

from __future__ import annotations

from sqlalchemy import select

from models import WorkerHeartbeat
from models.db import get_sessionmaker
from worker import runtime


def test_the_runtime_is_built_once_per_process_and_again_after_a_fork(env, monkeypatch):
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "t")
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", "http://127.0.0.1:9/client/v4")
    runtime.install(None)
    first = runtime.current()
    try:
        assert runtime.current() is first
        assert first.starter.client is first.client
        with monkeypatch.context() as forked:
            forked.setattr(runtime.os, "getpid", lambda: -1)  # as a forked child sees it
            child = runtime.current()
            assert child is not first and child.client is not first.client
            assert runtime.current() is child
            runtime.install(None)  # the child's own: closed in the child
    finally:
        first.close()  # the parent's, in the parent
        runtime.install(None)


def test_a_process_that_starts_beats_under_the_id_its_claims_name(env, monkeypatch):
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "t")
    runtime.install(None)
    factory = get_sessionmaker(env["LIVESTREAMS_DATABASE_URL"])
    try:
        owner = runtime.current().starter.owner
        with factory() as s:
            assert s.scalars(select(WorkerHeartbeat.id)).all() == [owner]
    finally:
        runtime.install(None)  # stops beating: the process holds no claim any more
    with factory() as s:
        assert s.scalars(select(WorkerHeartbeat.id)).all() == []
