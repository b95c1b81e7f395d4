"""The repository's Procfile, run as a deployment runs it: `honcho start` of every process it
names (serve, the start-lane worker, the follow worker, beat) on PostgreSQL and Redis, against
the fake API. A booking made over HTTP is started by the start lane, and seen live."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from models.db import get_sessionmaker
from tests.conftest import fresh_pg_database
from tests.processes import free_port, own_redis, wait_until
from worker.crypto import new_key
from worker.dev.fake_realtimekit import FakeRealtimeKit
from worker.dev.processes import isolated_env
from worker.http import apikeys

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "procfile-test-token"


def test_honcho_start_of_the_procfile_starts_a_booking_made_over_http(tmp_path: Path) -> None:
    with (
        own_redis(tmp_path) as redis,
        fresh_pg_database("livestreams_procfile") as url,
        FakeRealtimeKit(token=TOKEN, live_after=1.0) as fake,
    ):
        with get_sessionmaker(url).begin() as session:
            _, key = apikeys.create(session, name="platform", scopes=apikeys.SCOPES)
        port = free_port()
        env = isolated_env(
            {
                "LIVESTREAMS_DATABASE_URL": url.replace("postgresql+psycopg://", "postgresql://"),
                "LIVESTREAMS_BROKER_URL": redis.url,
                "LIVESTREAMS_SECRET_KEY": new_key(),
                "CLOUDFLARE_API_TOKEN": TOKEN,
                "CLOUDFLARE_BASE_URL": fake.base_url,
                "CLOUDFLARE_ACCOUNT_ID": "acct-procfile",
                "REALTIMEKIT_APP_ID": "app-procfile",
                "LIVESTREAMS_FIRST_CHECK": "1",
                "LIVESTREAMS_CHECK_CAP": "1",
                # honcho gives the first process (web) PORT; loopback only, in a test.
                "PORT": str(port),
                "HOST": "127.0.0.1",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                "PYTHONUNBUFFERED": "1",
            }
        )
        log = tmp_path / "honcho.log"
        with log.open("wb") as out:
            honcho = subprocess.Popen(
                [sys.executable, "-m", "honcho", "--no-colour", "-f", str(ROOT / "Procfile"),
                 "-d", str(tmp_path), "start"],
                # cwd: where its processes run, and beat writes its schedule file (not the
                # checkout: a test never writes there); -d alone does not move them.
                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            _book_and_see_it_start(honcho, log, f"http://127.0.0.1:{port}", key, fake)
        finally:
            _stop(honcho)
        text = log.read_text(errors="replace")
        assert key not in text and TOKEN not in text


def _book_and_see_it_start(
    honcho: subprocess.Popen[bytes], log: Path, base: str, key: str, fake: FakeRealtimeKit
) -> None:
    def up() -> bool:
        assert honcho.poll() is None, log.read_text(errors="replace")
        text = log.read_text(errors="replace")
        ready = "starts@" in text and "follow@" in text and text.count(" ready.") >= 2
        return ready and "beat: Starting" in text and "Application startup complete" in text

    wait_until(up, 90, "every process of the Procfile", interval=0.3)
    headers = {"Authorization": f"Bearer {key}"}
    meeting = str(uuid.uuid4())
    at = datetime.now(UTC) + timedelta(seconds=3)
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        made = client.post("/v1/bookings", json={"meeting_id": meeting, "at": at.isoformat()})
        assert made.status_code == 201, made.text
        path = made.headers["Location"]

        def state() -> str | None:
            assert honcho.poll() is None, log.read_text(errors="replace")
            shown = client.get(path).json()
            return shown["state"] if shown["state"] in ("live", "failed", "missed") else None

        assert wait_until(state, 40, "the booking to go live", interval=0.3) == "live", (
            log.read_text(errors="replace")
        )
    assert len(fake.created[meeting]) == 1
    text = log.read_text(errors="replace")
    # Started on the start lane's worker, as the Procfile lays them out.
    (line,) = [ln for ln in text.splitlines() if "(started)" in ln and made.json()["id"] in ln]
    assert line.split("|")[0].split()[-1].startswith("starts."), line


def _stop(honcho: subprocess.Popen[bytes]) -> None:
    """As an operator would stop it (Ctrl-C): honcho stops every process it started."""
    if honcho.poll() is None:
        os.killpg(honcho.pid, signal.SIGINT)
        try:
            honcho.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait(10)
