"""The product as a deployment installs it: a wheel built from this checkout, installed into a
fresh virtual environment outside it, run from an empty directory elsewhere. `db upgrade` on
PostgreSQL (given a plain postgresql:// URL), then `livestreams demo --keep`, whose worker,
beat and `serve` all come from the wheel: its closing table, its API and ops page while it
stays up, and a clean exit on Ctrl-C.

One test, on purpose: building and installing costs about 20 s.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import threading
import venv
from pathlib import Path

import httpx
import pytest

from models.db import dispose_all
from tests.conftest import fresh_pg_database
from worker.cli.migrate import downgrade
from worker.dev.demo import CASES, DEMO_API_PORT
from worker.dev.processes import isolated_env, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
CURL = re.compile(r"Bearer (lsk_\S+)' (http://127\.0\.0\.1:\d+)/v1/bookings")
OPS = re.compile(r"ops page at (http://127\.0\.0\.1:\d+/ops): sign in with the same key, (lsk_\S+)")
STILL_UP = "still up (--keep)"


def build_and_install(tmp: Path) -> Path:
    """The wheel of this checkout, installed with the postgres extra into a new venv: its bin."""
    dist = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("livestream_scheduler-*.whl")
    venv.create(tmp / "venv", with_pip=True)
    bin_dir = tmp / "venv" / "bin"
    subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "--quiet", f"{wheel}[postgres]"],
        check=True,
        capture_output=True,
    )
    return bin_dir


def test_the_wheel_migrates_postgresql_and_runs_the_demo_from_anywhere(tmp_path: Path) -> None:
    bin_dir = build_and_install(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = isolated_env({"PYTHONUNBUFFERED": "1"})
    env.pop("PYTHONPATH", None)

    def run(*argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / argv[0]), *argv[1:]],
            cwd=elsewhere, env={**env, **extra}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    where = run("python", "-c", "import worker.celeryconfig, models; print(models.__file__)")
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout  # not the checkout

    with fresh_pg_database("livestreams_wheel") as url:
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        downgrade(url, "base")  # made from a template at head: empty it, so every migration runs
        dispose_all()
        upgraded = run("livestreams", "db", "upgrade", LIVESTREAMS_DATABASE_URL=plain)
        assert upgraded.returncode == 0, upgraded.stderr
        assert upgraded.stdout.strip().endswith("is at head")
        listed = run("livestreams", "list", "--json", LIVESTREAMS_DATABASE_URL=plain)
        assert listed.returncode == 0, listed.stderr  # the schema is there

    lines = _demo_keep(bin_dir, elsewhere, env)
    out = "\n".join(lines)
    header = next(i for i, line in enumerate(lines) if line.split() == ["case", "expected", "got",
                                                                         "lateness"])  # fmt: skip
    table = lines[header + 1 : header + 1 + len(CASES)]
    assert [row.split("  ")[0] for row in table] == [case.label for case in CASES], out
    assert "not as expected" not in out
    assert "stopping every demo process" in out


def _demo_keep(bin_dir: Path, cwd: Path, env: dict[str, str]) -> list[str]:
    """`livestreams demo --keep`: until it stays up, then its API and ops page, then Ctrl-C."""
    lines: list[str] = []
    # The demo prefers port 8000 for its API; held, so two runs at once never race for it.
    with socket.socket() as held:
        with contextlib.suppress(OSError):
            held.bind(("127.0.0.1", DEMO_API_PORT))
            held.listen()
        demo = subprocess.Popen(
            [bin_dir / "livestreams", "demo", "--keep", "--dir", str(cwd / ".demo")],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert demo.stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(demo.stdout or []), daemon=True)
        reader.start()
        try:
            wait_until(lambda: any(STILL_UP in line for line in lines) or demo.poll(), 120,
                       "the demo to stay up")  # fmt: skip
            assert demo.poll() is None, "".join(lines)
            (ops,) = [m for line in lines if (m := OPS.search(line))]
            (curl,) = [m for line in lines if (m := CURL.search(line))]
            key, base = curl.group(1), curl.group(2)
            assert ops.group(2) == key and ops.group(1) == f"{base}/ops"
            page = httpx.get(ops.group(1), follow_redirects=True, timeout=10)
            assert page.status_code == 200 and "sign in" in page.text.lower(), page.text[:500]
            bookings = httpx.get(
                f"{base}/v1/bookings", headers={"Authorization": f"Bearer {key}"}, timeout=10
            )
            assert bookings.status_code == 200 and len(bookings.json()["items"]) == len(CASES)
            demo.send_signal(signal.SIGINT)
            assert demo.wait(60) == 0, "".join(lines)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait(10)
        reader.join(10)
        with pytest.raises(httpx.ConnectError):  # everything it started has stopped
            httpx.get(f"{base}/healthz", timeout=2)
    return [line.rstrip("\n") for line in lines]
