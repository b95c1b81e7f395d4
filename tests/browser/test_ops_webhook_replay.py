"""An ops person at the ops page's webhook endpoints, in chromium, against a real `livestreams
serve`: sees an endpoint failing for hours, opens it, reads its attempts, replays a delivery
and disables the endpoint. No worker runs, so what the page shows is the rows the test wrote
and what the clicks did to them. The webhook pictures of docs/http-api.md are taken here."""

from __future__ import annotations

import pytest

from tests.browser.conftest import sign_in
from tests.webhook_rows import EXCERPT, URL, cancel, deliveries, endpoint, fail, register

pytestmark = pytest.mark.slow


def test_see_a_failing_endpoint_replay_a_delivery_and_disable_it(served, page, screenshots) -> None:
    from playwright.sync_api import expect

    url = served.settings.database_url
    failing, secret = register(served.settings)
    register(served.settings, "https://quiet.example/hooks", ("booking.cancelled",))
    booked = served.book(external_ref="evt-platform-told")
    sent = cancel(served.settings, booked.id)
    (told,) = [d for d in sent if d.endpoint_id == failing]
    fail(url, told, [503, 503, None])

    sign_in(page, served.base, served.key)
    health = page.get_by_role("region", name="Health")
    expect(health).to_contain_text(f"Webhook endpoint {URL} failing since")
    page.get_by_role("link", name="Webhooks", exact=True).click()
    expect(page.get_by_role("heading", name="Webhook endpoints")).to_be_visible()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=URL))
    expect(row).to_contain_text("failing over 1 h")
    expect(row.get_by_role("cell").nth(4)).to_have_text("3")  # failures in a row
    expect(row).to_contain_text("(3 h ago)")
    expect(row).to_contain_text("1 pending")
    page.screenshot(path=str(screenshots / "ops-webhooks.png"), full_page=True)

    page.get_by_role("link", name=URL).click()
    expect(page.get_by_role("heading", name=f"Webhook endpoint {URL}")).to_be_visible()
    listed = page.locator("tr[id^=delivery-]")
    expect(listed).to_have_count(1)
    expect(listed.first).to_contain_text("evt-platform-told")
    page.get_by_text(f"Attempts of delivery {str(told.id)[:8]}: 503, 503, timed out").click()
    attempts = page.get_by_role("table", name=f"Attempts of delivery {str(told.id)[:8]}")
    expect(attempts.get_by_role("row")).to_have_count(4)  # the header and three attempts
    expect(attempts.get_by_text(EXCERPT).first).to_be_visible()  # as text, not as markup
    expect(attempts).to_contain_text("timed out after 10 s")
    page.screenshot(path=str(screenshots / "ops-webhook.png"), full_page=True)

    page.get_by_role("button", name="Replay booking.cancelled to evt-platform-told").click()
    expect(page.get_by_role("status")).to_contain_text("Replay queued")
    expect(listed).to_have_count(2)
    expect(listed.first.get_by_role("cell").nth(2)).to_have_text("pending")
    expect(listed.first.get_by_role("cell").nth(3)).to_have_text("0")
    mine = [d for d in deliveries(url) if d.endpoint_id == failing]
    assert len(mine) == 2 and {d.event_id for d in mine} == {told.event_id}

    page.get_by_label("Reason (shown beside it; optional)").fill("platform moving hosts")
    page.get_by_role("button", name="Disable the endpoint").click()
    expect(page.get_by_role("status")).to_contain_text("Disabled")
    expect(page.get_by_role("button", name="Enable the endpoint")).to_be_visible()
    assert endpoint(url, failing).disabled_reason == "platform moving hosts"
    page.get_by_role("link", name="Overview").click()
    expect(health).to_contain_text(f"Webhook endpoint {URL} disabled: platform moving hosts")
    assert secret not in page.content()
