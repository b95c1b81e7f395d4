"""The ops page's overview charts, search, processes and small answers, on SQLite and
PostgreSQL: what a person reads, from rows as the product writes them."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest

from models import StartAttempt, UpstreamPause, WorkerHeartbeat
from models.db import db_now, get_sessionmaker
from tests.conftest import make_due
from tests.lifecycle_rows import follow
from tests.ops_page import OpsPage
from tests.ops_rows import fail

SEARCH_LABEL = (
    "Search: the id of a booking, its livestream or its meeting; a ref or name, or how it starts"
)


@pytest.fixture
def ops(settings) -> OpsPage:
    page = OpsPage(settings)
    page.signed_in()
    return page


def _refs(html: str) -> list[str]:
    return re.findall(r'<a href="/ops/bookings/[0-9a-f-]{36}">([^<]+)</a>', html)


def _total(html: str, series: str) -> int:
    found = re.search(
        rf'data-series="{series}">\s*<figcaption>[^<]*<strong class="total">(\d+)</strong>', html
    )
    assert found, f"no {series} chart"
    return int(found[1])


def _bars(html: str, series: str) -> list[str]:
    """The tooltips of a chart's bars ("18:42Z: 3")."""
    chart = re.search(rf'data-series="{series}">(.*?)</figure>', html, re.S)
    assert chart
    return re.findall(r"<title>([^<]+)</title>", chart[1])


def _call(url: str, stream_id: uuid.UUID, number: int, action: str, ago: timedelta, **values):
    with get_sessionmaker(url).begin() as s:
        sent = db_now(s) - ago
        s.add(
            StartAttempt(
                stream_id=stream_id, number=number, action=action, sent_at=sent,
                finished_at=sent + timedelta(seconds=0.2), duration=0.2, **values,
            )
        )  # fmt: skip


def test_search_finds_a_booking_by_any_of_its_ids_or_a_prefix_in_any_case(ops, book, env) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    town = book(external_ref="Evt-2031-Town-Hall", name="town-hall")
    keynote = book(external_ref="evt-2031-keynote", name="Keynote_Main")
    other = book(external_ref="evtX2031", name="other")
    follow(url, keynote.id, "live", seen=[("LIVE", "poll", 3)])
    livestream = f"ls-{keynote.id.hex[:12]}"

    def found(q: str) -> list[str]:
        answer = ops.client.get("/ops/bookings", params={"q": q})
        assert answer.status_code == 200, answer.text
        return sorted(_refs(answer.text))

    assert found(str(town.id)) == ["Evt-2031-Town-Hall"]
    assert found(livestream) == ["evt-2031-keynote"]
    assert found(str(keynote.meeting_id)) == ["evt-2031-keynote"]
    assert found("evt-2031-keynote") == ["evt-2031-keynote"]  # the exact ref
    assert found("EVT-2031") == ["Evt-2031-Town-Hall", "evt-2031-keynote"]  # a prefix, any case
    assert found("keynote_") == ["evt-2031-keynote"]  # a name's prefix
    assert found("evt_") == []  # "_" and "%" are themselves, not wildcards
    assert found("evt%") == []
    assert found("evtx") == ["evtX2031"]
    assert found("town-hall-nope") == []
    assert other


def test_the_header_search_box_and_the_list_say_what_it_takes(ops) -> None:
    html = ops.client.get("/ops").text
    assert '<form method="get" action="/ops/bookings" class="search" role="search">' in html
    listed = ops.client.get("/ops/bookings").text
    assert SEARCH_LABEL in listed


def test_the_overview_charts_the_calls_of_the_last_hour(ops, book, env) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    refused, limited, live, old = book(), book(), book(), book()
    make_due(url, [refused.id, limited.id, live.id], timedelta(minutes=-10))
    fail(url, refused.id)  # one start call, refused for good (422), 5 s ago
    _call(url, limited.id, 1, "start", timedelta(minutes=3), outcome="retryable", http_status=429)
    follow(url, live.id, "live", seen=[("LIVE", "poll", 3)])  # started 2 s after its instant
    _call(url, live.id, 1, "start", timedelta(minutes=10), outcome="started", http_status=201)
    _call(url, live.id, 2, "status", timedelta(minutes=2), outcome="observed", http_status=200)
    _call(url, old.id, 1, "start", timedelta(hours=3), outcome="fatal", http_status=400)

    html = ops.client.get("/ops").text
    assert _total(html, "starts") == 3
    assert _total(html, "failures") == 1  # the 422; a 429 is counted as a pause
    assert _total(html, "pauses") == 1
    assert _total(html, "checks") == 1
    assert _total(html, "deliveries") == 0
    assert len(_bars(html, "failures")) == 1 and _bars(html, "deliveries") == []
    assert re.search(r'<span class="n">1</span> live now', html)
    assert "The last hour" in html
    lateness = re.search(r'data-series="lateness">.*?</figure>', html, re.S)[0]
    assert '<strong class="total">1</strong> starts' in lateness
    assert re.search(r'<span class="n">≤ 2.5 s</span> start lateness p50', unescape(html))

    # The last 24 hours hold the call of three hours ago as well.
    day = ops.client.get("/ops?range=24h").text
    assert _total(day, "starts") == 4 and _total(day, "failures") == 2
    assert "The last 24 hours" in day and 'aria-current="page">last 24 hours<' in day
    assert _total(ops.client.get("/ops?range=nonsense").text, "starts") == 3  # the hour


def test_the_overview_says_the_rate_budget_used_and_a_pause_with_its_end(ops, book, env) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    booked = book()
    for n in range(1, 4):
        _call(url, booked.id, n, "status", timedelta(seconds=10 * n), outcome="observed")
    html = ops.client.get("/ops").text
    assert "not paused" in html
    assert re.search(r'<span class="n">3 / 1200</span> rate budget used \(last 300 s\)', html)
    with get_sessionmaker(url).begin() as s:
        until = db_now(s) + timedelta(seconds=90)
        s.add(UpstreamPause(token_hash="t" * 32, paused_until=until))
    paused = ops.client.get("/ops").text
    stamp = until.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    assert f'paused</span> after a 429, until <time datetime="{stamp}">' in paused
    assert re.search(r"\(in 1 min\)|\(in \d+ s\)", paused)


def test_processes_lists_each_heartbeat_with_its_lane_and_marks_the_dead(ops, env) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    with get_sessionmaker(url).begin() as s:
        now = db_now(s)
        s.add_all(
            [
                WorkerHeartbeat(
                    id=uuid.uuid4(), hostname="start-1", pid=101,
                    beat_at=now - timedelta(seconds=1),
                    lane="livestreams.dispatch,livestreams.start",
                    doing="running livestreams.launch",
                ),
                WorkerHeartbeat(
                    id=uuid.uuid4(), hostname="follow-1", pid=202,
                    beat_at=now - timedelta(minutes=5), lane="livestreams.follow", doing="idle",
                ),
                WorkerHeartbeat(
                    id=uuid.uuid4(), hostname="beat-1", pid=303, beat_at=now, lane="beat",
                    doing="sending the dispatch tick every dispatch interval",
                ),
            ]
        )  # fmt: skip
    html = ops.client.get("/ops/processes").text
    rows = re.findall(r"<tr class=\"(bad-row)?\">\s*<td>([^<]+)</td>\s*<td>([^<]+)", html)
    assert [(name, kind.strip(), bool(dead)) for dead, name, kind in rows] == [
        ("beat-1 pid 303", "beat", False),
        ("start-1 pid 101", "worker", False),
        ("follow-1 pid 202", "worker", True),
    ]
    assert "livestreams.dispatch,livestreams.start" in html
    assert "running livestreams.launch" in html
    assert '<span class="flag mark-dead">dead</span>' in html
    assert "nothing: it stopped" in html  # the dead one does nothing, whatever it last said


def test_an_unknown_ops_path_is_a_page_and_the_favicon_is_served(ops) -> None:
    missing = ops.client.get("/ops/no/such/page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "There is no page at /ops/no/such/page." in missing.text
    icon = ops.client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg")
    assert ops.client.get("/ops/static/ops.js").status_code == 200


def test_the_bulk_preview_lists_the_first_50_and_the_count(ops, book) -> None:
    meeting = str(uuid.uuid4())
    start = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)
    for i in range(55):
        book(meeting_id=meeting, external_ref=f"bulk-{i:02d}", at=start + timedelta(minutes=i))
    html = ops.client.get("/ops/bulk/cancel", params={"meeting_id": meeting}).text
    assert '<strong class="count">55</strong>' in html
    assert "The first 50 of them, by start time" in html
    assert _refs(html) == [f"bulk-{i:02d}" for i in range(50)]
