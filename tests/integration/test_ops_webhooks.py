"""The ops page's webhook endpoints, on SQLite and PostgreSQL: each endpoint's health as its
row stores it, its deliveries with their bookings and attempts, and replay, disable and
enable done to the rows; a forged form or an unknown id changes nothing; never the secret."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from html import unescape

import pytest

from models import WebhookEndpoint
from models.db import get_sessionmaker
from tests.dbdump import dump
from tests.ops_page import OpsPage, alerts
from tests.webhook_rows import EXCERPT, URL, cancel, deliveries, endpoint, fail, register
from worker.http import apikeys
from worker.notify import endpoints

QUIET = "https://quiet.example/hooks"


@pytest.fixture
def ops(settings) -> OpsPage:
    page = OpsPage(settings)
    page.signed_in()
    return page


@pytest.fixture
def failing(settings, book):
    """Two endpoints and a cancelled booking: one delivery to each. The first endpoint's
    delivery failed three times (503, 503, no answer), and it has been failing for 3 h."""
    first, secret = register(settings)
    quiet, _ = register(settings, QUIET, ("booking.cancelled", "stream.live"))
    booked = book(external_ref="evt-told")
    sent = cancel(settings, booked.id)
    mine = next(d for d in sent if d.endpoint_id == first)
    fail(settings.database_url, mine, [503, 503, None])
    return first, quiet, secret, booked, mine


def text(html: str) -> str:
    """What a person reads: the markup's text, one space between words."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def row_of(html: str, marker: str) -> str:
    """The text of the (innermost) table row holding ``marker``."""
    rows = re.findall(r"<tr[^>]*>((?:(?!<tr).)*?)</tr>", html, re.S)
    found = [r for r in rows if marker in r]
    assert len(found) == 1, (marker, len(found))
    return text(found[0])


def _z(value) -> str:
    """An instant as the page shows it: UTC, to the second."""
    return value.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def test_the_list_shows_each_endpoints_health_from_its_row(ops, settings, failing) -> None:
    first, quiet, _, _, _ = failing
    stored = endpoint(settings.database_url, first)
    answer = ops.client.get("/ops/webhooks")
    assert answer.status_code == 200
    row = row_of(answer.text, f'href="/ops/webhooks/{first}"')
    assert row.startswith(f"{URL} every event type enabled")
    assert "enabled failing over 1 h" in row
    assert f"{_z(stored.last_success_at)} (2 d ago)" in row
    assert f"3 {_z(stored.failing_since)} (3 h ago)" in row  # failures in a row, since
    assert row.endswith("1 pending")
    calm = row_of(answer.text, f'href="/ops/webhooks/{quiet}"')
    assert calm == f"{QUIET} booking.cancelled, stream.live enabled never 0 1 pending"
    assert 'href="/ops/webhooks"' in answer.text  # in the navigation


def test_the_endpoint_page_shows_deliveries_with_their_booking_and_attempts(
    ops, settings, failing
) -> None:
    first, _, _, booked, mine = failing
    answer = ops.client.get(f"/ops/webhooks/{first}")
    assert answer.status_code == 200
    seen = text(answer.text)
    assert "Failures in a row 3" in seen and "Waiting deliveries 1 pending" in seen
    assert f'<a href="/ops/bookings/{booked.id}">evt-told</a>' in answer.text
    row = answer.text.split(f'<tr id="delivery-{mine.id}">')[1].split("</tr>")[0]
    assert text(row) == (
        f"booking.cancelled {mine.event_id} evt-told pending 3 timed out after 10 s "
        f"{_z(mine.created_at)} Replay"
    )
    summary = re.search(r"<summary>([^<]*)</summary>", answer.text)[1]
    assert summary == f"Attempts of delivery {str(mine.id)[:8]}: 503, 503, timed out after 10 s"
    attempts = re.findall(r"<tr><td>(\d)</td><td>[^<]+</td><td>(\d*)</td>", answer.text)
    assert attempts == [("1", "503"), ("2", "503"), ("3", "")]
    # The platform's answer is shown as text, never as markup.
    assert EXCERPT not in answer.text and "&lt;script&gt;alert(" in answer.text
    assert text(answer.text).count(EXCERPT) == 2


def test_replay_makes_a_new_delivery_of_the_same_event_due_now(ops, settings, failing) -> None:
    first, quiet, _, _, mine = failing
    before = deliveries(settings.database_url)
    answer = ops.post(f"/ops/webhooks/{first}/deliveries/{mine.id}/replay")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/ops/webhooks/{first}?done=replay"
    (new,) = [d for d in deliveries(settings.database_url) if d.id not in {b.id for b in before}]
    assert (new.event_id, new.endpoint_id, new.state, new.attempts) == (
        mine.event_id, first, "pending", 0,
    )  # fmt: skip
    shown = ops.client.get(answer.headers["location"]).text
    assert alerts(shown)[0].startswith("Replay queued")
    rows = re.findall(r'<tr id="delivery-([0-9a-f-]{36})"', shown)
    assert rows == [str(new.id), str(mine.id)]  # newest first
    # The other endpoint's delivery is not this endpoint's to replay: 404, nothing made.
    other = next(d for d in before if d.endpoint_id == quiet)
    refused = ops.post(f"/ops/webhooks/{first}/deliveries/{other.id}/replay")
    assert refused.status_code == 404
    assert len(deliveries(settings.database_url)) == len(before) + 1


def test_disable_and_enable_change_the_row_and_the_overview_says_so(ops, settings, failing) -> None:
    first, _, _, _, _ = failing
    overview = ops.client.get("/ops").text
    assert f"Webhook endpoint {URL} failing since" in text(overview)
    assert "(3 h ago; 3 failures in a row)" in text(overview)
    answer = ops.post(f"/ops/webhooks/{first}/disable", reason="platform moving hosts")
    assert answer.status_code == 303
    row = endpoint(settings.database_url, first)
    assert not row.enabled and row.disabled_reason == "platform moving hosts"
    shown = ops.client.get(answer.headers["location"]).text
    assert alerts(shown)[0].startswith("Disabled:")
    listed = row_of(ops.client.get("/ops/webhooks").text, f'href="/ops/webhooks/{first}"')
    assert "disabled platform moving hosts" in listed and "failing over" not in listed
    overview = text(ops.client.get("/ops").text)
    assert f"Webhook endpoint {URL} disabled: platform moving hosts" in overview
    assert "failing since" not in overview  # a disabled endpoint is not reported as failing

    assert ops.post(f"/ops/webhooks/{first}/enable").status_code == 303
    row = endpoint(settings.database_url, first)
    assert row.enabled and row.disabled_reason is None
    assert (row.failures_in_a_row, row.failing_since) == (0, None)
    assert f"Webhook endpoint {URL}" not in text(ops.client.get("/ops").text)


def test_a_reason_too_long_is_refused_and_changes_nothing(ops, settings, failing) -> None:
    first = failing[0]
    answer = ops.post(f"/ops/webhooks/{first}/disable", reason="x" * 501)
    assert answer.status_code == 422
    assert alerts(answer.text) == ["Refused: reason: at most 500 characters; nothing was changed."]
    assert endpoint(settings.database_url, first).enabled


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_a_forged_form_is_403_and_changes_nothing(ops, settings, failing, token) -> None:
    first, _, _, _, mine = failing
    before = dump(settings.database_url)
    data = {} if token is None else {"csrf": token}
    for path in ("/deliveries/{mine.id}/replay", "/disable", "/enable"):
        answer = ops.client.post(f"/ops/webhooks/{first}" + path.format(mine=mine), data=data)
        assert answer.status_code == 403, path
        assert "nothing was done" in answer.text
    assert dump(settings.database_url) == before


def test_unknown_ids_are_the_not_found_page(ops, settings, failing) -> None:
    first, _, _, _, mine = failing
    nobody = uuid.uuid4()
    before = dump(settings.database_url)
    for path in (f"/ops/webhooks/{nobody}", "/ops/webhooks/not-an-id"):
        answer = ops.client.get(path)
        assert answer.status_code == 404 and "<h1>Not found</h1>" in answer.text
    for path in (
        f"/ops/webhooks/{nobody}/disable",
        f"/ops/webhooks/{nobody}/enable",
        f"/ops/webhooks/{nobody}/deliveries/{mine.id}/replay",
        f"/ops/webhooks/{first}/deliveries/{nobody}/replay",
        f"/ops/webhooks/{first}/deliveries/not-an-id/replay",
    ):
        assert ops.post(path).status_code == 404, path
    assert dump(settings.database_url) == before


def test_no_page_shows_the_secret_or_its_ciphertext(ops, settings, failing) -> None:
    first, _, secret, _, mine = failing
    with get_sessionmaker(settings.database_url)() as s:
        stored = s.get(WebhookEndpoint, first)
        assert stored is not None
        ciphertext = stored.secret_ciphertext
    answers = [ops.client.get(p) for p in ("/ops", "/ops/webhooks", f"/ops/webhooks/{first}")]
    answers.append(ops.post(f"/ops/webhooks/{first}/deliveries/{mine.id}/replay"))
    answers.append(ops.post(f"/ops/webhooks/{first}/disable"))
    answers.append(ops.client.get(f"/ops/webhooks/{first}?done=disable"))
    for answer in answers:
        assert answer.status_code in (200, 303)
        assert secret not in answer.text and ciphertext not in answer.text
        assert "whsec_" not in answer.text


def test_deliveries_come_fifty_a_page_newest_first(ops, settings, failing) -> None:
    first, _, _, _, mine = failing
    with get_sessionmaker(settings.database_url).begin() as s:
        for _ in range(54):
            endpoints.replay(s, mine.id, endpoint_id=first)
    ids = {d.id for d in deliveries(settings.database_url) if d.endpoint_id == first}
    page_one = ops.client.get(f"/ops/webhooks/{first}").text
    first_ids = re.findall(r'<tr id="delivery-([0-9a-f-]{36})"', page_one)
    assert len(first_ids) == 50 and str(mine.id) not in first_ids  # the oldest is last
    next_href = unescape(re.search(r'<a href="([^"]+)" rel="next"', page_one)[1])
    page_two = ops.client.get(next_href).text
    rest = re.findall(r'<tr id="delivery-([0-9a-f-]{36})"', page_two)
    assert rest[-1] == str(mine.id) and 'rel="next"' not in page_two
    assert {uuid.UUID(i) for i in first_ids + rest} == ids and len(first_ids + rest) == 55
    bad = ops.client.get(f"/ops/webhooks/{first}?cursor=nonsense")
    assert bad.status_code == 422 and "cursor: not a cursor" in alerts(bad.text)[0]


def test_every_webhook_form_carries_the_csrf_token(ops, failing) -> None:
    first = failing[0]
    for path in ("/ops/webhooks", f"/ops/webhooks/{first}"):
        html = ops.client.get(path).text
        # Every form that changes something (a POST) carries it; the search box is a GET.
        assert html.count('name="csrf"') == html.count('<form method="post"') > 0, path
        assert set(re.findall(r'name="csrf" value="([^"]*)"', html)) == {ops.csrf}


def test_the_pages_need_a_session(settings, failing) -> None:
    first = failing[0]
    anonymous = OpsPage(settings)
    for path in ("/ops/webhooks", f"/ops/webhooks/{first}"):
        answer = anonymous.client.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/ops/sign-in?next=")
    answer = anonymous.client.post(f"/ops/webhooks/{first}/disable", data={"csrf": "x"})
    assert answer.status_code == 303 and endpoint(settings.database_url, first).enabled


def test_without_webhooks_manage_the_pages_refuse(ops, settings, failing, monkeypatch) -> None:
    """Should `ops` ever stop implying webhooks:manage, the page asks for it as the API does."""
    first = failing[0]
    monkeypatch.setitem(
        apikeys.IMPLIED, apikeys.OPS, apikeys.IMPLIED[apikeys.OPS] - {apikeys.WEBHOOKS_MANAGE}
    )
    for answer in (
        ops.client.get("/ops/webhooks"),
        ops.client.get(f"/ops/webhooks/{first}"),
        ops.post(f"/ops/webhooks/{first}/disable"),
    ):
        assert answer.status_code == 403 and "need the webhooks:manage scope" in text(answer.text)
    assert endpoint(settings.database_url, first).enabled
    assert ops.client.get("/ops").status_code == 200  # the rest of the page is ops' as before


def test_failing_for_less_than_the_alert_is_not_marked(ops, settings, book) -> None:
    first, _ = register(settings)
    (sent,) = cancel(settings, book().id)
    fail(settings.database_url, sent, [500], failing_for=timedelta(minutes=20), last_success=None)
    row = row_of(ops.client.get("/ops/webhooks").text, f'href="/ops/webhooks/{first}"')
    assert "failing over" not in row and " never 1 " in row and "(20 min ago)" in row
    assert "Webhook endpoint" not in text(ops.client.get("/ops").text)
