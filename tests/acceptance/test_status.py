"""`livestreams status` as a health check: its exit code and what it says."""

from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import update

from models import DispatcherHeartbeat, ScheduledStream
from models.db import db_now, get_sessionmaker
from worker.cli import cli
from worker.dispatch import tick


def status() -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["status", "--json"], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


def test_never_ticked_is_unhealthy(env) -> None:
    code, data = status()
    assert code == 1 and not data["healthy"]
    assert "never ticked" in data["problems"][0]


def test_a_fresh_tick_is_healthy_and_counts_states(env, settings, book) -> None:
    book(), book()
    tick(get_sessionmaker(settings.database_url), settings, lambda c: None)
    code, data = status()
    assert code == 0 and data["healthy"] and data["problems"] == []
    assert data["counts"]["scheduled"] == 2 and data["counts"]["started"] == 0
    assert data["last_tick_age_seconds"] < settings.claims.stale_after


def test_a_stale_tick_is_unhealthy(env, settings) -> None:
    tick(get_sessionmaker(settings.database_url), settings, lambda c: None)
    with get_sessionmaker(settings.database_url).begin() as s:
        s.execute(update(DispatcherHeartbeat).values(last_tick_at=db_now(s) - timedelta(minutes=5)))
    code, data = status()
    assert code == 1
    assert "last dispatch tick was" in data["problems"][0]


def test_an_overdue_unclaimed_row_is_unhealthy_and_named(env, settings, book) -> None:
    stream = book()
    tick(get_sessionmaker(settings.database_url), settings, lambda c: None)
    with get_sessionmaker(settings.database_url).begin() as s:
        past = db_now(s) - timedelta(minutes=2)
        s.execute(
            update(ScheduledStream)
            .where(ScheduledStream.id == stream.id)
            .values(due_at=past, scheduled_at=past)
        )
    code, data = status()
    assert code == 1
    assert data["oldest_overdue"]["id"] == str(stream.id)
    assert str(stream.id) in data["problems"][0]


def test_a_row_still_starting_past_its_deadline_is_unhealthy(env, settings, book) -> None:
    """A run that can never finish (a worker that raises before its deadline logic) leaves the
    row `starting`; the health check must not call that healthy."""
    stream = book()
    tick(get_sessionmaker(settings.database_url), settings, lambda c: None)
    with get_sessionmaker(settings.database_url).begin() as s:
        now = db_now(s)
        s.execute(
            update(ScheduledStream)
            .where(ScheduledStream.id == stream.id)
            .values(
                state="starting",
                due_at=now,
                start_deadline=now - timedelta(minutes=5),
                lease_expires_at=now + timedelta(seconds=30),
            )
        )
    code, data = status()
    assert code == 1 and data["starting_past_deadline"] == 1
    assert "1 booking(s) still starting past their start deadline" in data["problems"]
