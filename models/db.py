"""Engines and sessions: one engine per process and database URL, made again after a fork."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000

_lock = threading.Lock()
_engines: dict[str, tuple[int, Engine, sessionmaker[Session]]] = {}


def make_engine(url: str, **kw: Any) -> Engine:
    """An engine set up for this product: WAL and a busy timeout on SQLite, pre-ping on servers."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kw)
        _tune_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kw)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so that BEGIN IMMEDIATE below is honoured.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Every transaction takes the write lock up front: a deferred transaction that reads
        # and then writes can fail with "database is locked" at once, without waiting, when
        # another process (beat, a worker) wrote in between. Ours are all short.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def get_sessionmaker(url: str) -> sessionmaker[Session]:
    """The process's sessionmaker for ``url``; a forked child gets its own pool."""
    pid = os.getpid()
    with _lock:
        cached = _engines.get(url)
        if cached is not None and cached[0] == pid:
            return cached[2]
        if cached is not None:
            # Inherited from the parent: drop its pooled connections without closing the
            # sockets the parent still uses (SQLAlchemy "Using Connection Pools with fork").
            cached[1].dispose(close=False)
        engine = make_engine(url)
        factory = make_sessionmaker(engine)
        _engines[url] = (pid, engine, factory)
        return factory


def dispose_all() -> None:
    """Close every pooled connection of this process (tests and shutdown)."""
    with _lock:
        for pid, engine, _ in _engines.values():
            engine.dispose(close=pid == os.getpid())
        _engines.clear()


def write_with_retries(
    factory: sessionmaker[Session], write: Callable[[Session, datetime], T], tries: int
) -> T:
    """Run ``write(session, db_now)`` in one transaction, again if the database blinks.

    Up to ``tries`` times with a short, growing pause (0.4 s, 0.8 s, ...): for writes whose
    loss costs more than the wait, such as a start's result after a 201.
    """
    for attempt in range(1, tries + 1):
        try:
            with factory.begin() as session:
                return write(session, db_now(session))
        except OperationalError:
            if attempt == tries:
                raise
            log.warning(
                "database error writing a result; trying again",
                extra={"action": "result_write_retry"},
            )
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def upsert_newer(session: Session, model: Any, key: str, newer: str, **values: Any) -> None:
    """Insert a row of ``model``, or, if its ``key`` exists, overwrite it with ``values`` when
    ``values[newer]`` is later than the stored one: a late writer never moves it back.

    One statement (``INSERT ... ON CONFLICT DO UPDATE ... WHERE``) on PostgreSQL and SQLite,
    so concurrent writers need no lock of their own.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(model).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[getattr(model, key)],
        set_={name: getattr(stmt.excluded, name) for name in values if name != key},
        where=getattr(model, newer) < getattr(stmt.excluded, newer),
    )
    session.execute(stmt)


_CLOCK = text("SELECT clock_timestamp()")


def db_now(session: Session) -> datetime:
    """The database's clock, so that many hosts agree on what is due.

    SQLite runs inside this process, so its clock is this host's.
    """
    if session.get_bind().dialect.name == "postgresql":
        value = session.connection().execute(_CLOCK).scalar_one()
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    return datetime.now(UTC)
