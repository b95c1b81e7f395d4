"""The ops page in a real browser: Playwright for Python driving Debian's chromium
(`apt-get install chromium`; `playwright install` cannot download browsers here).

Without /usr/bin/chromium these tests skip with the reason, except under CI=true, where they
fail: .ci/run installs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
# Written by every browser run, so that the README's pictures are the current page.
SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"
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
