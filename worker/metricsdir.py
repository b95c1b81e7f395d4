"""Naming a worker's metric files' folder, before prometheus_client is imported (it reads
PROMETHEUS_MULTIPROC_DIR once, at its own import). Kept apart from worker.metrics for that
reason: worker.celery calls ``prepare()`` before it imports anything that counts."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from worker import settings
from worker.errors import SettingsError


def prepare() -> Path | None:
    """In a worker's main process, at its start (before any fork): make its metrics folder,
    empty, if metrics are served (LIVESTREAMS_METRICS_PORT). The folder is per main process,
    so a beat or a second worker on the host never shares or wipes another's files; pool
    children inherit its name from the environment. A bad port is left to the worker's
    start-up check (exit 2)."""
    try:
        port = settings.metrics_port_from_env()
    except SettingsError:
        return None
    if port is None:
        return None
    base = settings.metrics_dir_from_env() or tempfile.gettempdir()
    folder = Path(base) / f"livestreams-metrics-{os.getpid()}"
    if folder.exists():  # a previous process that had the same pid
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    settings.set_multiprocess_dir(str(folder))
    return folder
