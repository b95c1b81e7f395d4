"""An ops person at the ops page, in chromium, against a real `livestreams serve`: signs in,
reads the overview, filters, opens a booking, bulk-cancels; a page without a session goes to
sign-in and a forged form is refused. The screenshots in the README are taken here."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from models.db import get_sessionmaker
from tests.browser.conftest import PHONE, sign_in
from tests.conftest import make_due
from tests.lifecycle_rows import follow
from tests.ops_rows import RAY, REFUSAL, busy_hour, fail
from worker.http import apikeys

SEARCH_LABEL = (
    "Search: the id of a booking, its livestream or its meeting; a ref or name, or how it starts"
)
pytestmark = pytest.mark.slow


def test_sign_in_filter_open_a_booking_and_bulk_cancel(served, page, screenshots) -> None:
    from playwright.sync_api import expect

    url = served.settings.database_url
    town_hall = served.book(
        external_ref="evt-2031-town-hall", name="town-hall", tz="Europe/Berlin",
        at=datetime.now(UTC) + timedelta(hours=2), duration="1h30m",
    )  # fmt: skip
    refused = served.book(external_ref="evt-refused", name="keynote", tz="America/New_York")
    make_due(url, refused.id, timedelta(minutes=-10))  # due, and refused, in the last hour
    fail(url, refused.id)
    flagged = served.book(external_ref="evt-quiet-room", tz="Asia/Tokyo")
    follow(url, flagged.id, "started", seen=[("INVOKED", "start", 2)], problem="not_live")
    meeting = str(uuid.uuid4())
    batch = [served.book(meeting_id=meeting, external_ref=f"evt-batch-{i}") for i in range(3)]
    assert town_hall
    busy = [served.book(external_ref=f"evt-earlier-{i}") for i in range(5)]
    checks = busy_hour(url, [b.id for b in busy])

    sign_in(page, served.base, served.key)
    attention = page.get_by_role("region", name="Needs a look")
    expect(attention.get_by_role("link", name="1 failed, due in the last hour")).to_be_visible()
    expect(attention.get_by_role("link", name="1 problem: not_live")).to_be_visible()
    expect(page.get_by_role("cell", name="evt-2031-town-hall")).to_be_visible()
    # The last hour: the five starts and their checks, the refusal, five lateness of 2 s.
    expect(page.locator('[data-series="starts"] .total')).to_have_text("6")
    expect(page.locator('[data-series="failures"] .total')).to_have_text("1")
    expect(page.locator('[data-series="checks"] .total')).to_have_text(str(checks))
    expect(page.locator('[data-series="lateness"] .total')).to_have_text("5")
    page.screenshot(path=str(screenshots / "ops-overview.png"), full_page=True)

    # Filter: the failed ones.
    page.get_by_role("link", name="Bookings", exact=True).click()
    page.get_by_label("failed", exact=True).check()
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(2)  # the header and the one failed booking
    expect(rows.nth(1)).to_contain_text("evt-refused")

    # Its detail: why it did not start, the API's answer with its cf-ray, and the retry.
    page.get_by_role("link", name="evt-refused").click()
    expect(page.get_by_role("heading", name="Booking evt-refused")).to_be_visible()
    expect(page.get_by_text(f"failed after 1 start call(s): {REFUSAL}")).to_be_visible()
    expect(page.get_by_role("cell", name=RAY)).to_be_visible()
    expect(page.get_by_role("link", name="Retry…")).to_be_visible()
    page.screenshot(path=str(screenshots / "ops-detail.png"), full_page=True)

    # Bulk cancel what a meeting filter selects: the count first, then the deed.
    page.goto(f"{served.base}/ops/bookings")
    page.get_by_label("Meeting id").fill(meeting)
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("table").get_by_role("row")).to_have_count(4)
    page.get_by_role("link", name="Bulk cancel…").click()
    expect(page.locator(".count")).to_have_text("3")
    assert {served.state(s.id) for s in batch} == {"scheduled"}
    page.get_by_role("button", name="Cancel 3 booking(s)").click()
    expect(page.get_by_role("status")).to_have_text("Cancel: 3 booking(s) done.")
    assert {served.state(s.id) for s in batch} == {"cancelled"}
    assert served.state(town_hall.id) == "scheduled"

    # Keyboard: the filter form works without a mouse.
    page.goto(f"{served.base}/ops/bookings")
    page.get_by_label(SEARCH_LABEL).fill("keynote")
    page.keyboard.press("Enter")
    expect(page.get_by_role("table").get_by_role("row")).to_have_count(2)

    log = served.log.read_text()
    assert served.key not in log and "ops sign-in by API key 'ops-desk'" in log


def test_a_page_without_a_session_goes_to_sign_in_and_a_forged_form_is_refused(
    served, browser, page
) -> None:
    from playwright.sync_api import expect

    booked = served.book(external_ref="evt-keep")
    page.goto(f"{served.base}/ops/bookings/{booked.id}")
    expect(page).to_have_url(re.compile(r"/ops/sign-in\?next=%2Fops%2Fbookings%2F"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key with the ops scope").fill(served.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{served.base}/ops/bookings/{booked.id}")  # back where it was

    # The confirm page's form with its CSRF token changed: refused, nothing cancelled.
    page.get_by_role("link", name="Cancel…").click()
    page.locator("input[name=csrf]").last.evaluate("el => el.value = 'forged'")
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("nothing was done")
    assert served.state(booked.id) == "scheduled"

    # A key without the ops scope cannot sign in; the page says why.
    with get_sessionmaker(served.settings.database_url).begin() as s:
        _, reader = apikeys.create(s, name="platform", scopes=[apikeys.BOOKINGS_READ])
    phone = browser.new_context(viewport=PHONE)
    try:
        other = phone.new_page()
        other.goto(f"{served.base}/ops")
        other.get_by_label("API key with the ops scope").fill(reader)
        other.get_by_role("button", name="Sign in").click()
        expect(other.get_by_role("alert")).to_contain_text("lacks the ops scope")
        other.goto(f"{served.base}/ops")
        expect(other.get_by_role("heading", name="Sign in")).to_be_visible()
        # At phone width nothing is wider than the screen.
        width = other.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]
    finally:
        phone.close()
