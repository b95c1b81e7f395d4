"""What every case runs against: PostgreSQL, Redis and the fake RealtimeKit API, made per run.

PostgreSQL and Redis are started the way ``.ci/run`` starts them when nothing listens on their
ports. Each run gets its own database (``bench_<random>``, dropped at the end) and its own
Redis DB number (flushed at the start and at the end), so it never disturbs the tests.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from benchmarks.report import Figure, log
from models import Base
from models.db import dispose_all, get_sessionmaker
from worker.cli.migrate import upgrade
from worker.crypto import new_key
from worker.dev.fake_realtimekit import FakeRealtimeKit
from worker.settings import Settings

PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "9"))
TOKEN = "bench-token"
NOOP_KEY = "bench:noop:done"  # a Redis list: when each no-op task ran
ALT_TASK = "bench.alt_start"
ALT_SCHEDULER = "sqlalchemy_celery_beat.schedulers:DatabaseScheduler"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _wait_port(port: int, what: str) -> None:
    for _ in range(60):
        if _port_open(port):
            return
        time.sleep(0.5)
    raise SystemExit(f"benchmarks: nothing listens on 127.0.0.1:{port} after 30 s ({what})")


def ensure_services() -> None:
    """Start PostgreSQL and Redis as CI does (.ci/run) when they are not running."""
    if not _port_open(5432):
        log("starting PostgreSQL")
        version = sorted(os.listdir("/etc/postgresql"))[0]
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=True
        )
    _wait_port(5432, "PostgreSQL")
    if not _port_open(6379):
        log("starting Redis")
        for folder in ("/var/lib/redis", "/var/log/redis"):
            os.makedirs(folder, exist_ok=True)
        subprocess.run(
            ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port",
             "6379", "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
             "--logfile", "/var/log/redis/ci.log"],
            check=True,
        )  # fmt: skip
    _wait_port(6379, "Redis")


def sync_url(url: str) -> str:
    """A SQLAlchemy URL as a libpq URI for psycopg itself."""
    return url.replace("postgresql+psycopg://", "postgresql://")


@dataclass
class Bench:
    """One run's database, broker, fake API and the environment for its celery processes."""

    database_url: str
    broker_url: str
    fake: FakeRealtimeKit
    env: dict[str, str]
    workdir: Path
    quick: bool
    results: dict[str, list[Figure]] = field(default_factory=dict)  # case name -> its figures

    @property
    def database_name(self) -> str:
        return self.database_url.rsplit("/", 1)[1]

    @property
    def settings(self) -> Settings:
        return self.settings_for(self.database_url)

    def settings_for(self, url: str) -> Settings:
        return Settings.from_env({**self.env, "LIVESTREAMS_DATABASE_URL": url})

    @property
    def factory(self) -> sessionmaker[Session]:
        return get_sessionmaker(self.database_url)

    def schema(self, name: str, *, migrate: bool = True) -> str:
        """A URL for schema ``name`` of the run's database (made, and migrated, on first use).

        Two schemas let a case hold 1,000 and 1,000,000 rows at once and alternate between
        them, so that noise on the machine hits both sizes alike.
        """
        with psycopg.connect(sync_url(self.database_url), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')
        url = f"{self.database_url}?options=-csearch_path%3D{name}"
        if migrate:
            upgrade(url)
        return url

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.broker_url)

    def reset(self) -> None:
        """Empty the product's tables, the broker DB and the fake's records between cases."""
        with self.factory.begin() as session:
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            session.execute(text(f"TRUNCATE {tables} CASCADE"))
        with contextlib.closing(self.redis()) as client:
            client.flushdb()
        self.fake.reset()


@contextlib.contextmanager
def bench(quick: bool, logs: Path | None = None) -> Iterator[Bench]:
    """A fresh database migrated to head, a flushed Redis DB and a running fake API.

    Celery logs go to ``logs`` when given (kept), else to a temporary folder (removed).
    """
    ensure_services()
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0]
    url = f"{url}/{name}"
    broker = f"{REDIS_URL}/{REDIS_DB}"
    fake = FakeRealtimeKit(token=TOKEN).start()  # no injected faults, no rate limit
    try:
        upgrade(url)
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
        folder = contextlib.nullcontext(str(logs)) if logs else tempfile.TemporaryDirectory()
        with folder as tmp:
            env = {
                "LIVESTREAMS_DATABASE_URL": url,
                "LIVESTREAMS_BROKER_URL": broker,
                "LIVESTREAMS_SECRET_KEY": new_key(),
                "CLOUDFLARE_API_TOKEN": fake.token,
                "CLOUDFLARE_BASE_URL": fake.base_url,
                "CLOUDFLARE_ACCOUNT_ID": "bench-account",
                "REALTIMEKIT_APP_ID": "bench-app",
            }
            run = Bench(url, broker, fake, env, Path(tmp), quick)
            run.reset()
            log(f"database {name}, broker {broker}, fake API {fake.base_url}")
            yield run
            run.reset()
    finally:
        fake.stop()
        dispose_all()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
