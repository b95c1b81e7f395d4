"""The ops page's series and capacity views, and a booking's page naming its series."""

from __future__ import annotations

import dataclasses
import re
from html import unescape

import pytest

from models.db import get_sessionmaker
from tests.integration.test_capacity import STAMP, T, bulk
from tests.ops_page import OpsPage
from tests.webhook_rows import register
from worker.bookings import booking
from worker.series import flow

MEETING = "0f8fad5b-d9cb-469f-a165-70867728950e"


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


@pytest.fixture
def ops(settings) -> OpsPage:
    page = OpsPage(dataclasses.replace(settings, series_horizon_days=400))
    page.signed_in()
    return page


def test_a_series_its_occurrences_and_an_occurrences_page(ops) -> None:
    settings = ops.settings
    with get_sessionmaker(settings.database_url).begin() as s:
        made = flow.add(s, settings, ref="town-hall", meeting_id=MEETING,
                        rule="FREQ=WEEKLY;BYDAY=MO;COUNT=3", at="19:00", tz="Europe/Berlin",
                        duration="1h", first="2027-03-15")  # fmt: skip
        first = made.made[0]
        booking.reschedule(s, settings, booking.find(s, made.made[1].id), at="2027-03-22 20:00")
    listed = ops.client.get("/ops/series")
    assert listed.status_code == 200
    assert "town-hall active FREQ=WEEKLY;BYDAY=MO;COUNT=3 19:00 Europe/Berlin" in text(listed.text)
    shown = ops.client.get(f"/ops/series/{made.series.id}")
    page = text(shown.text)
    assert "2027-03-15 2027-03-15T18:00:00.000Z 2027-03-15 19:00 CET scheduled" in page
    assert "2027-03-22 2027-03-22T19:00:00.000Z 2027-03-22 20:00 CET scheduled (detached)" in page
    assert "2027-03-29 2027-03-29T17:00:00.000Z 2027-03-29 19:00 CEST scheduled" in page
    assert f'href="/ops/bookings/{first.id}"' in shown.text
    occurrence = ops.client.get(f"/ops/bookings/{first.id}")
    assert "Occurrence 2027-03-15 of series town-hall" in text(occurrence.text)
    assert f'href="/ops/series/{made.series.id}"' in occurrence.text
    assert ops.client.get("/ops/series/not-a-series").status_code == 404


def test_the_capacity_page_puts_the_window_at_risk_first(ops) -> None:
    bulk(ops.settings.database_url, 100, T.replace(hour=12), 900.0)
    bulk(ops.settings.database_url, 1500)
    answer = ops.client.get("/ops/capacity", params={"from": "2031-01-06T00:00:00Z"})
    assert answer.status_code == 200
    rows = [text(r) for r in re.findall(r"<tr[^>]*>(.*?)</tr>", answer.text, re.S)][1:]
    assert rows[0] == (
        f"{STAMP} to 2031-01-06T18:05:00.000Z 1500 1500.0 1080 0 420 {STAMP}: 1,500 starts due, "
        "1,080 fit the token's budget (1,080 calls / 300 s) at the instant; 420 would be "
        "missed (not started within the 120 s start window)"
    )
    assert rows[1].startswith("2031-01-06T12:00:00.000Z") and rows[1].endswith("100 100.0 1080 0 0")
    assert 'class="bad-row"' in answer.text
    # Nothing due in the next day, the default.
    assert "No starts due." in text(ops.client.get("/ops/capacity").text)
    refused = ops.client.get("/ops/capacity", params={"from": "soon"})
    assert refused.status_code == 422 and "from:" in text(refused.text)


def test_an_endpoints_page_lists_series_events_with_their_series(ops) -> None:
    endpoint_id, _ = register(ops.settings, types=("series.created", "booking.cancelled"))
    with get_sessionmaker(ops.settings.database_url).begin() as s:
        made = flow.add(s, ops.settings, ref="town-hall", meeting_id=MEETING,
                        rule="FREQ=WEEKLY;BYDAY=MO;COUNT=1", at="19:00", tz="Europe/Berlin",
                        duration="1h", first="2027-03-15")  # fmt: skip
    answer = ops.client.get(f"/ops/webhooks/{endpoint_id}")
    assert answer.status_code == 200
    assert "series.created" in text(answer.text) and "series town-hall" in text(answer.text)
    assert f'href="/ops/series/{made.series.id}"' in answer.text
