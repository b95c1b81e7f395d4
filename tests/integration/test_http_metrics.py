"""/metrics on `livestreams serve`: the state the database holds, as Prometheus reads it, on
SQLite and PostgreSQL; read at most once per few seconds however often it is scraped."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from models import ScheduledStream
from models.db import db_now, get_sessionmaker
from tests.conftest import make_due
from tests.http_api import Api
from worker.http import metrics as page


def scraped(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = api.client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def test_metrics_say_what_the_database_holds(settings, book, monkeypatch) -> None:
    monkeypatch.setattr(page, "CACHE_SECONDS", 0.0)
    overdue = [book(), book()]
    make_due(settings.database_url, [s.id for s in overdue], at=timedelta(seconds=-30))
    flagged = book()
    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(
            update(ScheduledStream)
            .where(ScheduledStream.id == flagged.id)
            .values(state="started", livestream_id="ls-1", problem="not_live", due_at=db_now(s))
        )
    got = scraped(Api(settings))
    assert got[("livestreams_bookings", (("state", "scheduled"),))] == 2
    assert got[("livestreams_bookings", (("state", "started"),))] == 1
    assert got[("livestreams_bookings", (("state", "ended"),))] == 0
    assert got[("livestreams_flagged_bookings", (("problem", "not_live"),))] == 1
    assert got[("livestreams_flagged_bookings", (("problem", "stop_failed"),))] == 0
    assert got[("livestreams_overdue_bookings", ())] == 2
    assert 29 <= got[("livestreams_oldest_overdue_seconds", ())] < 300
    assert got[("livestreams_rate_limit_paused_seconds", ())] == 0
    assert got[("livestreams_rate_budget_limit", ())] == settings.upstream.rate_limit.requests
    assert ("livestreams_last_dispatch_tick_age_seconds", ()) not in got  # never ticked


def test_scrapes_within_the_cache_read_the_database_once(settings, book, monkeypatch) -> None:
    reads = []
    real = page.read
    monkeypatch.setattr(page, "read", lambda s: reads.append(1) or real(s))
    api = Api(settings)
    book()
    first = scraped(api)
    book()  # not seen until the cache is older than CACHE_SECONDS
    assert scraped(api) == first and len(reads) == 1
    monkeypatch.setattr(page, "CACHE_SECONDS", 0.0)
    assert scraped(api)[("livestreams_bookings", (("state", "scheduled"),))] == 2
    assert len(reads) == 2


def test_metrics_need_no_key_and_tell_no_secret(settings, book) -> None:
    api = Api(settings)
    key = api.key("ops")
    text = api.client.get("/metrics").text
    assert key not in text and "lsk_" not in text
