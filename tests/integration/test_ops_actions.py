"""The ops page's views and actions, on SQLite and PostgreSQL: what a person reads on each
page, and what each confirmed action does to the stored rows (through worker.bookings.booking, as
the CLI does); a refusal shows its reason and changes nothing."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest

from models import ScheduledStream
from models.db import get_sessionmaker
from tests.acceptance.test_cli import _store_started
from tests.conftest import make_due
from tests.dbdump import dump
from tests.lifecycle_rows import follow
from tests.ops_page import OpsPage, alerts
from tests.ops_rows import RAY, REFUSAL, fail

SOON = timedelta(hours=2)


@pytest.fixture
def ops(settings) -> OpsPage:
    page = OpsPage(settings)
    page.signed_in()
    return page


def _row(url: str, stream_id: uuid.UUID) -> ScheduledStream:
    with get_sessionmaker(url)() as s:
        found = s.get(ScheduledStream, stream_id)
        assert found is not None
        return found


def _refs(html: str) -> list[str]:
    return re.findall(r'<a href="/ops/bookings/[0-9a-f-]{36}">([^<]+)</a>', html)


def test_cancel_asks_first_then_cancels(ops, book, env) -> None:
    booked = book(external_ref="evt-cancel", at=datetime.now(UTC) + SOON)
    url = env["LIVESTREAMS_DATABASE_URL"]
    detail = ops.client.get(f"/ops/bookings/{booked.id}").text
    assert f'href="/ops/bookings/{booked.id}/cancel"' in detail
    asked = ops.client.get(f"/ops/bookings/{booked.id}/cancel")
    assert asked.status_code == 200 and "This cannot be undone." in asked.text
    assert _row(url, booked.id).state == "scheduled"  # asking changed nothing
    done = ops.post(f"/ops/bookings/{booked.id}/cancel")
    assert done.status_code == 303
    assert _row(url, booked.id).state == "cancelled"
    shown = ops.client.get(done.headers["location"]).text
    assert "Cancelled." in alerts(shown) and "cancelled: cancelled by ops" in shown


def test_a_refused_action_shows_the_reason_and_changes_nothing(ops, book, env) -> None:
    booked = book(at=datetime.now(UTC) + SOON)
    url = env["LIVESTREAMS_DATABASE_URL"]
    before = dump(url)
    for action, reason in [
        (
            "retry",
            "Refused: state: cannot retry a booking that is scheduled; only failed or missed",
        ),
        ("stop", "Refused: state: booking is scheduled: nothing to stop yet"),
        ("reschedule", "Refused: at: give the new start time"),
    ]:
        answer = ops.post(f"/ops/bookings/{booked.id}/{action}")
        assert answer.status_code in (409, 422)
        assert any(line.startswith(reason) for line in alerts(answer.text)), alerts(answer.text)
    answer = ops.post(f"/ops/bookings/{booked.id}/reschedule", at="2001-01-01 10:00")
    assert answer.status_code == 422 and "is in the past" in alerts(answer.text)[0]
    assert dump(url) == before


def test_reschedule_reads_a_wall_time_in_the_bookings_zone(ops, book, env) -> None:
    booked = book(at="2031-01-01 19:00", tz="Europe/Berlin", duration="1h")
    answer = ops.post(f"/ops/bookings/{booked.id}/reschedule", at="2031-01-02 20:00")
    assert answer.status_code == 303, alerts(answer.text)
    row = _row(env["LIVESTREAMS_DATABASE_URL"], booked.id)
    assert row.scheduled_at == datetime(2031, 1, 2, 19, 0, tzinfo=UTC)
    assert row.ends_at == datetime(2031, 1, 2, 20, 0, tzinfo=UTC)  # the length kept
    zoned = ops.post(f"/ops/bookings/{booked.id}/reschedule", at="2031-01-03 09:00", tz="UTC")
    assert zoned.status_code == 303
    assert _row(env["LIVESTREAMS_DATABASE_URL"], booked.id).timezone == "UTC"


@pytest.mark.parametrize("state", ["failed", "missed"])
def test_retry_now_or_at_a_time(ops, book, env, state) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    now_one, later_one = book(), book()
    fail(url, now_one.id, state=state)
    fail(url, later_one.id, state=state)
    assert ops.post(f"/ops/bookings/{now_one.id}/retry").status_code == 303
    assert (
        ops.post(f"/ops/bookings/{later_one.id}/retry", at="2031-06-01T10:00:00Z").status_code
        == 303
    )
    row = _row(url, now_one.id)
    assert row.state == "scheduled" and row.last_error is None
    assert abs((row.due_at - datetime.now(UTC)).total_seconds()) < 600
    assert _row(url, later_one.id).due_at == datetime(2031, 6, 1, 10, 0, tzinfo=UTC)


def test_stop_now_requests_the_stop(ops, book, env) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    booked = book()
    follow(url, booked.id, "live", seen=[("LIVE", "poll", 3)])
    answer = ops.post(f"/ops/bookings/{booked.id}/stop")
    assert answer.status_code == 303
    assert _row(url, booked.id).stop_requested_at is not None
    assert "Stop requested" in alerts(ops.client.get(answer.headers["location"]).text)[0]
    again = ops.post(f"/ops/bookings/{booked.id}/stop")
    assert again.status_code == 409 and "a stop was already requested" in alerts(again.text)[0]


def test_bulk_cancel_shows_the_count_then_cancels_only_what_the_filter_selects(ops, book, env):
    url = env["LIVESTREAMS_DATABASE_URL"]
    meeting = str(uuid.uuid4())
    mine = [book(meeting_id=meeting) for _ in range(3)]
    other = book()
    failed = book(meeting_id=meeting)
    fail(url, failed.id)
    asked = ops.client.get(f"/ops/bulk/cancel?meeting_id={meeting}")
    assert asked.status_code == 200
    assert re.search(r'class="count">(\d+)<', asked.text)[1] == "3"
    assert "Cancel 3 booking(s)" in asked.text
    assert {_row(url, s.id).state for s in mine} == {"scheduled"}
    done = ops.post("/ops/bulk/cancel", meeting_id=meeting)
    assert done.status_code == 200
    assert alerts(done.text) == ["Cancel: 3 booking(s) done."]
    assert {_row(url, s.id).state for s in mine} == {"cancelled"}
    assert _row(url, other.id).state == "scheduled"
    assert _row(url, failed.id).state == "failed"


def test_bulk_retry_retries_the_failed_and_missed_it_selects(ops, book, env) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    failed, missed, waiting = book(), book(), book()
    fail(url, failed.id)
    fail(url, missed.id, state="missed")
    asked = ops.client.get("/ops/bulk/retry?state=failed&state=missed&state=scheduled")
    assert re.search(r'class="count">(\d+)<', asked.text)[1] == "2"
    done = ops.post("/ops/bulk/retry", state="failed")
    assert alerts(done.text) == ["Retry: 1 booking(s) done."]
    assert [_row(url, s.id).state for s in (failed, missed, waiting)] == [
        "scheduled", "missed", "scheduled"
    ]  # fmt: skip
    nothing = ops.client.get("/ops/bulk/retry?state=live")
    assert re.search(r'class="count">(\d+)<', nothing.text)[1] == "0"
    assert "Retry 0" not in nothing.text


def test_the_list_filters_and_pages(ops, book, env) -> None:
    start = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
    meeting = str(uuid.uuid4())
    for i in range(55):
        book(at=start + timedelta(minutes=i), external_ref=f"evt-{i:02d}", meeting_id=meeting)
    book(at=start, external_ref="elsewhere", name="town-hall")
    # The latest start first, 50 a page.
    first = ops.client.get(f"/ops/bookings?meeting_id={meeting}")
    refs = _refs(first.text)
    assert refs == [f"evt-{i:02d}" for i in range(54, 4, -1)]
    next_href = re.search(r'href="([^"]+)" rel="next"', first.text)[1].replace("&amp;", "&")
    second = ops.client.get(next_href)
    assert _refs(second.text) == [f"evt-{i:02d}" for i in range(4, -1, -1)]
    assert 'rel="next"' not in second.text
    # The earliest first, when the Starts column is clicked.
    sort_href = re.search(r'<a href="([^"]+)" aria-label="Starts, sorted', first.text)[1]
    oldest = ops.client.get(sort_href.replace("&amp;", "&"))
    assert _refs(oldest.text) == [f"evt-{i:02d}" for i in range(50)]
    next_href = re.search(r'href="([^"]+)" rel="next"', oldest.text)[1].replace("&amp;", "&")
    assert _refs(ops.client.get(next_href).text) == [f"evt-{i:02d}" for i in range(50, 55)]
    ranged = ops.client.get(
        "/ops/bookings", params={"from": "2031-03-01T12:10:00Z", "to": "2031-03-01T13:13:00+01:00"}
    )
    assert _refs(ranged.text) == ["evt-12", "evt-11", "evt-10"]
    # A time without an offset, or a date, is refused as `livestreams list` refuses it.
    for naive in ("2031-03-01 12:13", "2031-03-01"):
        refused = ops.client.get("/ops/bookings", params={"from": naive})
        assert refused.status_code == 422
        assert alerts(refused.text)[0].startswith(f"from: '{naive}' has no UTC offset")
    assert _refs(ops.client.get("/ops/bookings?q=town-hall").text) == ["elsewhere"]
    assert _refs(ops.client.get("/ops/bookings?q=evt-07").text) == ["evt-07"]
    assert _refs(ops.client.get("/ops/bookings?state=failed").text) == []
    bad = ops.client.get("/ops/bookings?meeting_id=nope")
    assert bad.status_code == 422 and alerts(bad.text) == ["meeting_id: must be a UUID, got 'nope'"]


def test_the_list_shows_times_in_utc_and_the_bookings_zone(ops, book) -> None:
    book(at="2031-07-01 19:00", tz="Europe/Berlin", external_ref="berlin")
    html = ops.client.get("/ops/bookings").text
    assert "2031-07-01T17:00:00Z (2031-07-01 19:00:00 CEST, Europe/Berlin)" in html


def test_the_overview_counts_flags_and_links_to_each_list(ops, book, env) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    book(external_ref="soon", at=datetime.now(UTC) + SOON)
    book(external_ref="later", at=datetime.now(UTC) + timedelta(days=3))
    failed, flagged = book(), book()
    make_due(url, [failed.id, flagged.id], timedelta(days=-1))
    fail(url, failed.id)
    follow(url, flagged.id, "started", problem="not_live")
    html = ops.client.get("/ops").text
    assert '<noscript><meta http-equiv="refresh"' in html
    # The failure was due a day ago: not in the last hour, in the last 7 days, whose link
    # lists the failed bookings due from the range's start to now.
    assert re.search(r'<span class="n">0</span> failed, due in the last hour', html)
    week = ops.client.get("/ops?range=7d").text
    tile = re.search(
        r'href="(/ops/bookings\?state=failed&amp;from=[^"]+)"><span class="n">1</span> failed, due',
        week,
    )
    assert tile, week
    listed_failed = ops.client.get(unescape(tile[1])).text
    assert len(re.findall(r"/ops/bookings/[0-9a-f-]{36}\"", listed_failed)) == 1
    assert re.search(
        r'href="/ops/bookings\?problem=not_live"><span class="n">1</span> problem: not_live', html
    )
    assert 'Dispatcher\'s last tick: <strong class="bad">never</strong>' in html
    assert "the dispatcher has never ticked" in html
    assert _refs(html) == ["soon"]  # the next 24 hours
    listed = ops.client.get("/ops/bookings?problem=not_live").text
    assert len(re.findall(r"/ops/bookings/[0-9a-f-]{36}\"", listed)) == 1


def test_the_detail_shows_the_request_result_attempts_and_timeline(ops, book, env) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    failed = book(external_ref="refused", name="town-hall")
    fail(url, failed.id)
    html = ops.client.get(f"/ops/bookings/{failed.id}").text
    assert f"failed after 1 start call(s): {REFUSAL}" in html
    assert RAY in html and "<td>422</td>" in html and "town-hall" in html
    assert f'href="/ops/bookings/{failed.id}/retry"' in html
    live = book()
    follow(url, live.id, "live", seen=[("INVOKED", "start", 2), ("LIVE", "webhook", 9)])
    html = ops.client.get(f"/ops/bookings/{live.id}").text
    assert re.search(
        r"<strong>INVOKED</strong> from start.*<strong>LIVE</strong> from webhook", html, re.S
    )
    missing = ops.client.get(f"/ops/bookings/{uuid.uuid4()}")
    assert missing.status_code == 404


def test_the_stream_key_is_masked_and_revealed_only_with_its_scope(settings, book, env, caplog):
    secret = "sk_live_0123456789abcdefSECRET"
    booked = book()
    _store_started(env, str(booked.id), secret)
    ops = OpsPage(settings)
    ops.signed_in("ops")
    path = f"/ops/bookings/{booked.id}"
    html = ops.client.get(path).text
    assert "****CRET" in html and secret not in html
    refused = ops.post(f"{path}/reveal")
    assert refused.status_code == 403 and secret not in refused.text
    assert "needs the stream-keys:read scope" in alerts(refused.text)[0]
    revealer = OpsPage(settings, prefix="revealer")
    revealer.signed_in("ops", "stream-keys:read")
    with caplog.at_level(logging.INFO, logger="worker"):
        shown = revealer.post(f"{path}/reveal")
    assert shown.status_code == 200 and secret in shown.text
    assert shown.headers["cache-control"] == "no-store"
    logged = [r for r in caplog.records if getattr(r, "action", "") == "stream_key_reveal"]
    assert len(logged) == 1 and logged[0].api_key == "revealer1"
    assert secret not in caplog.text
    # A GET never reveals (no prefetch or link can).
    assert secret not in revealer.client.get(path).text
