"""An ops person at the ops page's series and capacity views, in chromium, against a real
`livestreams serve`: opens a series, its occurrences, one occurrence's booking and back, and
the capacity page with the window at risk first. No worker runs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from models.db import db_now, get_sessionmaker
from tests.browser.conftest import sign_in
from tests.integration.test_capacity import bulk
from worker.series import flow

pytestmark = pytest.mark.slow
MEETING = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_open_a_series_an_occurrence_and_the_capacity_page(served, page) -> None:
    from playwright.sync_api import expect

    factory = get_sessionmaker(served.settings.database_url)
    with factory.begin() as s:
        now = db_now(s)
        first = (now + timedelta(days=2)).date()
        made = flow.add(s, served.settings, ref="town-hall", meeting_id=MEETING,
                        rule="FREQ=DAILY;COUNT=3", at="19:00", tz="Europe/Berlin",
                        duration="1h", first=first.isoformat())  # fmt: skip
        occurrence = made.made[0]
    at_risk = (now + timedelta(hours=2)).replace(microsecond=0)
    bulk(served.settings.database_url, 1500, at_risk, 120.0)

    sign_in(page, served.base, served.key)
    page.get_by_role("link", name="Series", exact=True).click()
    expect(page.get_by_role("heading", name="Series")).to_be_visible()
    page.get_by_role("link", name="town-hall").click()
    expect(page.get_by_role("heading", name="Series town-hall")).to_be_visible()
    table = page.get_by_role("table", name="Occurrences booked so far, by date")
    expect(table.get_by_role("row")).to_have_count(4)  # the header and three
    ref = f"town-hall:{first.isoformat()}"
    expect(table.get_by_role("row").nth(1)).to_contain_text("19:00")
    table.get_by_role("link", name=ref).click()
    expect(page.get_by_role("heading", name=f"Booking {ref}")).to_be_visible()
    expect(page.get_by_text(f"Occurrence {first.isoformat()} of series town-hall")).to_be_visible()
    assert page.url.endswith(f"/ops/bookings/{occurrence.id}")
    page.get_by_role("link", name="town-hall").click()
    expect(page.get_by_role("heading", name="Series town-hall")).to_be_visible()

    page.get_by_role("link", name="Capacity", exact=True).click()
    windows = page.get_by_role("table", name="Starts due per rate window")
    at_risk_row = windows.get_by_role("row").nth(1)
    expect(at_risk_row).to_contain_text("1,500 starts due, 1,080 fit")
    expect(at_risk_row).to_contain_text("420 would be missed")
