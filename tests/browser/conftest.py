"""The ops page in a real browser: Playwright for Python driving Debian's chromium
(`apt-get install chromium`; `playwright install` cannot download browsers here).

Without /usr/bin/chromium these tests skip with the reason, except under CI=true, where they
fail: .ci/run installs it.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models import ScheduledStream
from models.db import dispose_all, get_sessionmaker
from tests.conftest import IN_CI, sqlite_database
from tests.processes import Celery, free_port
from worker.bookings import booking
from worker.crypto import new_key
from worker.http import apikeys
from worker.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
# The README's pictures. A test run writes its screenshots to a temporary folder (a run never
# changes a tracked file); `make screenshots` sets SCREENSHOTS_DIR to this folder on purpose.
README_SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    (pytest.fail if IN_CI else pytest.skip)(message)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests save their screenshots."""
    chosen = os.environ.get("SCREENSHOTS_DIR")
    if not chosen:
        return tmp_path_factory.mktemp("screenshots")
    folder = Path(chosen).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport=DESKTOP)
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page, base: str, key: str) -> None:
    """Sign in through the form, as a person does."""
    from playwright.sync_api import expect

    page.goto(f"{base}/ops")
    expect(page).to_have_url(re.compile(r"/ops/sign-in\?next="))
    page.get_by_label("API key with the ops scope").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


@dataclass
class Served:
    base: str
    settings: Settings
    key: str
    log: Path

    def book(self, **fields: object) -> ScheduledStream:
        fields.setdefault("meeting_id", str(uuid.uuid4()))
        fields.setdefault("at", datetime.now(UTC) + timedelta(hours=3))
        with get_sessionmaker(self.settings.database_url).begin() as s:
            return booking.schedule(s, self.settings, **fields).stream

    def state(self, stream_id: uuid.UUID) -> str:
        with get_sessionmaker(self.settings.database_url)() as s:
            row = s.get(ScheduledStream, stream_id)
            assert row is not None
            return row.state


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """`livestreams serve` on a SQLite database of the test's own, and an ops key."""
    url = sqlite_database(tmp_path / "livestreams.db")
    env = {
        "LIVESTREAMS_DATABASE_URL": url,
        "LIVESTREAMS_SECRET_KEY": new_key(),
        "CLOUDFLARE_ACCOUNT_ID": "acct-ops",
        "REALTIMEKIT_APP_ID": "app-ops",
    }
    settings = Settings.from_env(env)
    with get_sessionmaker(url).begin() as s:
        _, key = apikeys.create(s, name="ops-desk", scopes=[apikeys.OPS])
    port = free_port()
    with Celery(env, tmp_path) as processes:
        processes.serve("serve", port)
        yield Served(f"http://127.0.0.1:{port}", settings, key, processes.log("serve"))
    dispose_all()
