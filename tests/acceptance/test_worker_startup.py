"""A worker that could only fail every start refuses to start, in one line naming why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from worker.dev.processes import isolated_env

ROOT = Path(__file__).resolve().parents[2]


def start_worker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool", "solo"],
        cwd=ROOT,
        env=isolated_env({"LIVESTREAMS_BROKER_URL": "redis://127.0.0.1:6379/9", **env}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "CLOUDFLARE_API_TOKEN"),
        ({"CLOUDFLARE_API_TOKEN": "t"}, "LIVESTREAMS_SECRET_KEY"),  # a server database
        (
            {"CLOUDFLARE_API_TOKEN": "t", "LIVESTREAMS_SECRET_KEY": "short"},
            "LIVESTREAMS_SECRET_KEY",
        ),
        # Read as Celery loads its settings, before any signal: still one line, not a traceback.
        ({"LIVESTREAMS_DATABASE_URL": "mysql://app:pw@db/x"}, "LIVESTREAMS_DATABASE_URL"),
    ],
)
def test_a_worker_without_what_starts_need_exits_2_naming_it(pg_url, env, variable) -> None:
    done = start_worker({"LIVESTREAMS_DATABASE_URL": pg_url, **env})
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("livestreams: error:")]
    assert variable in line
