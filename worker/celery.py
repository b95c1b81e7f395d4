"""The Celery app: ``celery -A worker worker`` and ``celery -A worker beat`` find it here."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

app = Celery("livestreams", include=["worker.tasks"])
app.config_from_object("celeryconfig")


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # A prefork child must not reuse the parent's pooled database connections or HTTP
    # sockets; both caches are keyed by pid and rebuild on first use in the child.
    from worker import tasks

    tasks.reset_process_state()
