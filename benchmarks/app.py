"""The product's Celery app plus one no-op task, so both run on the very same worker.

``celery -A benchmarks.app worker`` serves the product's tasks exactly as ``-A worker`` does,
and ``bench.noop``: the engine's own ceiling on the same broker and worker settings.
"""

from __future__ import annotations

import os
import time

import redis

from benchmarks.services import NOOP_KEY
from worker.celery import app

_clients: dict[int, redis.Redis] = {}


def _redis() -> redis.Redis:
    client = _clients.get(os.getpid())  # one per process: prefork children must not share it
    if client is None:
        _clients.clear()
        client = _clients[os.getpid()] = redis.Redis.from_url(app.conf.broker_url)
    return client


@app.task(name="bench.noop", ignore_result=True)
def noop() -> None:
    """Does nothing but note when it ran (one RPUSH), so the runner can time the last one."""
    _redis().rpush(NOOP_KEY, repr(time.time()))


__all__ = ["app", "noop"]
