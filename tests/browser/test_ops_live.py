"""The ops page's overview v2 in chromium, against a real `livestreams serve`: find a booking
by its livestream id and by a ref prefix, see a failure appear on the chart without a reload
(and not while paused), the keyboard's "/", dark mode, the phone layout, the processes, the
HTML 404, the favicon, and no script or style refused by the page's CSP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from models import WorkerHeartbeat
from models.db import db_now, get_sessionmaker
from tests.browser.conftest import PHONE, sign_in
from tests.lifecycle_rows import follow
from tests.ops_rows import fail

pytestmark = pytest.mark.slow

REFRESH = 15_000  # ms: the page's live interval (worker.http.pages.views.REFRESH_SECONDS)


def _refused_by_csp(page) -> list[str]:
    seen: list[str] = []
    page.on(
        "console",
        lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return seen


def test_find_by_livestream_id_and_ref_prefix_and_see_a_failure_arrive_live(served, page) -> None:
    from playwright.sync_api import expect

    url = served.settings.database_url
    refused_by_csp = _refused_by_csp(page)
    live = served.book(external_ref="evt-2031-keynote", name="keynote")
    follow(url, live.id, "live", seen=[("LIVE", "poll", 3)])
    served.book(external_ref="EVT-2031-panel", name="panel")
    served.book(external_ref="other-2031", name="other")
    doomed = served.book(external_ref="evt-2031-doomed")
    livestream = f"ls-{live.id.hex[:12]}"

    page.clock.install()  # the page's timers run when the test says so
    sign_in(page, served.base, served.key)

    # "/" focuses the search box; a livestream id finds its booking.
    page.keyboard.press("/")
    expect(page.get_by_role("searchbox", name="Find a booking")).to_be_focused()
    page.keyboard.type(livestream)
    page.keyboard.press("Enter")
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("evt-2031-keynote")
    expect(rows.nth(1)).to_contain_text(livestream)

    # A ref's start, in another case, finds both refs that start so (newest first).
    page.get_by_role("searchbox", name="Find a booking").fill("evt-2031-")
    page.keyboard.press("Enter")
    expect(rows).to_have_count(4)
    expect(page.get_by_role("link", name="EVT-2031-panel")).to_be_visible()
    expect(page.get_by_role("link", name="evt-2031-doomed")).to_be_visible()
    expect(page.get_by_role("link", name="other-2031")).to_have_count(0)

    # The overview: no failure yet. The page is marked, and scrolled, to prove no reload.
    page.goto(f"{served.base}/ops")
    failures = page.locator('[data-series="failures"]')
    expect(failures.locator(".total")).to_have_text("0")
    expect(failures.locator("rect.bar")).to_have_count(0)
    page.evaluate("window.notReloaded = true; window.scrollTo(0, 400)")
    fail(url, doomed.id)
    page.clock.run_for(REFRESH + 1000)
    expect(failures.locator(".total")).to_have_text("1")
    expect(failures.locator("rect.bar")).to_have_count(1)
    expect(page.locator('[data-series="starts"] .total')).to_have_text("1")
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("window.scrollY") == 400

    # Paused, the chart stays as it is; resumed, it catches up at once.
    pause = page.get_by_role("button", name="Pause live updates")
    pause.click()
    expect(page.get_by_role("button", name="Resume live updates")).to_have_attribute(
        "aria-pressed", "true"
    )
    again = served.book(external_ref="evt-2031-again")
    fail(url, again.id)
    page.clock.run_for(2 * REFRESH)
    expect(failures.locator(".total")).to_have_text("1")
    page.get_by_role("button", name="Resume live updates").click()
    expect(failures.locator(".total")).to_have_text("2")
    assert page.evaluate("window.notReloaded") is True
    assert refused_by_csp == []


def test_dark_mode_phone_width_processes_404_and_favicon(served, browser) -> None:
    from playwright.sync_api import expect

    url = served.settings.database_url
    for i in range(12):
        served.book(external_ref=f"evt-phone-{i}", at=datetime.now(UTC) + timedelta(hours=i + 1))
    with get_sessionmaker(url).begin() as s:
        now = db_now(s)
        s.add(
            WorkerHeartbeat(
                id=uuid.uuid4(), hostname="gone-host", pid=4242,
                beat_at=now - timedelta(minutes=10), lane="livestreams.start", doing="idle",
            )
        )  # fmt: skip
    phone = browser.new_context(viewport=PHONE, color_scheme="dark")
    try:
        page = phone.new_page()
        refused_by_csp = _refused_by_csp(page)
        sign_in(page, served.base, served.key)
        # Dark: the system's preference, without a switch of the page's own.
        background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
        assert background == "rgb(13, 17, 23)"
        # Compact: nothing wider than the phone, and the glance, the charts included, within
        # the first few screens rather than a 2,800 px scroll of tiles.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        charts_end = page.evaluate(
            "document.querySelector('.charts').getBoundingClientRect().bottom + scrollY"
        )
        assert charts_end < 3 * PHONE["height"]

        page.get_by_role("link", name="Processes").click()
        row = page.get_by_role("row").filter(has_text="gone-host pid 4242")
        expect(row).to_contain_text("dead")
        expect(row).to_contain_text("livestreams.start")

        page.goto(f"{served.base}/ops/no-such-page")
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        expect(page.get_by_role("alert")).to_have_text("There is no page at /ops/no-such-page.")
        icon = page.request.get(f"{served.base}/favicon.ico")
        assert icon.status == 200 and icon.headers["content-type"] == "image/svg+xml"
        assert refused_by_csp == []
    finally:
        phone.close()
