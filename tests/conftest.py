"""Shared fixtures: an isolated environment, real databases (SQLite and PostgreSQL), sessions.

PostgreSQL tests run in a database made for this test process and dropped after it. Where the
server is missing they skip with the reason, except in CI (CI=true), where they fail: there
a missing service must never pass for a green run.

Each test process (one per pytest-xdist worker, or the only one) owns its databases: the names
carry the process id and a random part, so parallel workers and two runs from two checkouts
never share one. Migrations run once per process into a template, which each test copies:
replaying every migration for every test was most of the integration tier's time.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text, update
from sqlalchemy.orm import Session

from models import Base, ScheduledStream
from models.db import db_now, dispose_all, get_sessionmaker
from worker.bookings import booking
from worker.cli.migrate import upgrade
from worker.crypto import new_key
from worker.dev.processes import PRODUCT_ENV_PREFIXES
from worker.settings import Settings

pytest_plugins = ["tests.fake_api"]

PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Hypothesis: `ci` (the default) runs each property's own number of examples; `deep`
# (HYPOTHESIS_PROFILE=deep, for local and nightly runs) ten times as many. No deadline in either:
# a slow example on a busy machine is not a failure (no test fails on a wall-clock number).
hypothesis_settings.register_profile("ci", deadline=None, print_blob=True)
hypothesis_settings.register_profile("deep", max_examples=1000, deadline=None, print_blob=True)
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
hypothesis_settings.load_profile(HYPOTHESIS_PROFILE)


def examples(count: int) -> int:
    """A property's number of examples under the current Hypothesis profile."""
    return count * 10 if HYPOTHESIS_PROFILE == "deep" else count


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(message + " (CI requires it)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's shell must not leak product settings into a test."""
    for key in list(os.environ):
        if key.startswith(PRODUCT_ENV_PREFIXES):
            monkeypatch.delenv(key)


def _unique_name(prefix: str) -> str:
    """A database name no other test process, here or in another checkout, uses."""
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def _pg_admin(sql: str) -> None:
    import psycopg

    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql)


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


_pg_template: str | None = None


def _pg_template_name() -> str:
    """This process's PostgreSQL database migrated to head, copied by each fresh database;
    dropped when the process exits."""
    global _pg_template
    if _pg_template is None:
        name = _unique_name("livestreams_template")
        _pg_admin(f'CREATE DATABASE "{name}"')
        atexit.register(_pg_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        upgrade(_pg_url(name))
        # CREATE DATABASE ... TEMPLATE refuses while anyone is connected to the template.
        dispose_all()
        _pg_template = name
    return _pg_template


@contextmanager
def fresh_pg_database(prefix: str = "livestreams_test") -> Iterator[str]:
    """A new PostgreSQL database migrated to head; dropped (with its connections) after."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = _unique_name(prefix)
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{_pg_template_name()}"')
    try:
        yield _pg_url(name)
    finally:
        dispose_all()
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_sqlite_template: Path | None = None


def sqlite_database(path: Path) -> str:
    """The URL of a new SQLite database at ``path``, migrated to head: a copy of this process's
    template, which is migrated once."""
    global _sqlite_template
    if _sqlite_template is None:
        folder = Path(tempfile.mkdtemp(prefix="livestreams-template-"))
        atexit.register(shutil.rmtree, folder, True)
        upgrade(f"sqlite:///{folder / 'template.db'}")
        _sqlite_template = folder / "template.db"
    # The backup API copies a consistent image whatever the journal mode (WAL keeps pages in a
    # side file that a plain file copy could miss).
    source, target = sqlite3.connect(_sqlite_template), sqlite3.connect(path)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this test process, migrated to head, dropped at the end."""
    with fresh_pg_database() as url:
        yield url


def _truncate(url: str) -> None:
    factory = get_sessionmaker(url)
    with factory.begin() as session:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        session.execute(text(f"TRUNCATE {tables} CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that takes this runs on the SQLite default and on PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_database(tmp_path / "livestreams.db")
        return
    url = request.getfixturevalue("pg_database")
    _truncate(url)  # before, not after: a test that died half-way leaves nothing to the next
    yield url


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """PostgreSQL only, emptied before the test."""
    _truncate(pg_database)
    return pg_database


@pytest.fixture
def secret_key() -> str:
    return new_key()


@pytest.fixture
def env(db_url: str, secret_key: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The product's environment for one test, also exported for the CLI under test."""
    values = {
        "LIVESTREAMS_DATABASE_URL": db_url,
        "LIVESTREAMS_SECRET_KEY": secret_key,
        "CLOUDFLARE_ACCOUNT_ID": "acct-test",
        "REALTIMEKIT_APP_ID": "app-test",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


def tuned(settings: Settings, **groups: dict[str, Any]) -> Settings:
    """``settings`` with some fields of its groups changed:
    ``tuned(settings, claims={"batch": 10}, webhooks={"allow_private": True})``."""
    changed = {name: replace(getattr(settings, name), **fields) for name, fields in groups.items()}
    return replace(settings, **changed)


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    with get_sessionmaker(settings.database_url)() as s:
        yield s


@pytest.fixture
def book(settings: Settings) -> Callable[..., Any]:
    """Book a stream (committed); keyword arguments override the defaults."""

    def _book(**fields: Any) -> Any:
        fields.setdefault("meeting_id", str(uuid.uuid4()))
        fields.setdefault("at", datetime.now(UTC) + timedelta(hours=1))
        with get_sessionmaker(settings.database_url).begin() as s:
            return booking.schedule(s, settings, **fields).stream

    return _book


def make_due(
    url_or_session: str | Session,
    stream_id: uuid.UUID | Iterable[uuid.UUID],
    at: datetime | timedelta | None = None,
    window: timedelta = timedelta(minutes=15),
) -> datetime:
    """Move one booking (or several) to ``at``, as if booked for it: ``scheduled_at`` and
    ``due_at`` become ``at`` and ``start_deadline`` ``at + window``. ``at`` is the database's
    now when None, now + ``at`` for a timedelta. Given a URL it commits; given a session it
    leaves the commit to the caller. Returns the instant."""
    if isinstance(url_or_session, str):
        with get_sessionmaker(url_or_session).begin() as session:
            return make_due(session, stream_id, at, window)
    if not isinstance(at, datetime):
        at = db_now(url_or_session) + (at or timedelta(0))
    ids = [stream_id] if isinstance(stream_id, uuid.UUID) else list(stream_id)
    url_or_session.execute(
        update(ScheduledStream)
        .where(ScheduledStream.id.in_(ids))
        .values(scheduled_at=at, due_at=at, start_deadline=at + window)
    )
    return at


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The chaos run (one test of a minute) starts first: collected after the other tiers, it
    started last on a parallel run and was the whole run's tail. A stable sort, so every test
    worker collects the same order."""
    items.sort(key=lambda item: not item.nodeid.startswith("tests/chaos/"))
