"""A running pipeline for tests: the fake API, real `celery` processes, and ways to look at it.

``pipeline_for(kind, tmp)`` yields a Pipeline on the embedded default (``sqlite``: SQLite
database and broker) or on ``postgresql`` (a fresh PostgreSQL database and Redis DB 5).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from models import ScheduledStream, StartAttempt
from models.db import dispose_all, get_sessionmaker
from tests.conftest import fresh_pg_database, sqlite_database
from tests.processes import Celery, own_redis, wait_until
from worker.bookings import booking
from worker.crypto import new_key
from worker.dev.fake_realtimekit import FakeRealtimeKit
from worker.settings import Settings

TOKEN = "pipeline-test-token"
ENV = {
    "LIVESTREAMS_DISPATCH_INTERVAL": "0.5",
    "LIVESTREAMS_LOOKAHEAD": "2",
    "LIVESTREAMS_HTTP_CONNECT_TIMEOUT": "1",
    "LIVESTREAMS_HTTP_READ_TIMEOUT": "2",
    "LIVESTREAMS_HTTP_WRITE_TIMEOUT": "1",
    "LIVESTREAMS_HTTP_POOL_TIMEOUT": "1",
    "LIVESTREAMS_BACKOFF_BASE": "0.3",
    "LIVESTREAMS_BACKOFF_CAP": "2",
    "LIVESTREAMS_BACKOFF_FLOOR": "0.2",
    "CLOUDFLARE_API_TOKEN": TOKEN,
    "CLOUDFLARE_ACCOUNT_ID": "acct-pipeline",
    "REALTIMEKIT_APP_ID": "app-pipeline",
}


@dataclass
class Pipeline:
    settings: Settings
    env: dict[str, str]
    fake: FakeRealtimeKit
    celery: Celery

    def book(self, seconds: float = 2.0, **fields: Any) -> ScheduledStream:
        fields.setdefault("meeting_id", str(uuid.uuid4()))
        at = datetime.now(UTC) + timedelta(seconds=seconds)
        with get_sessionmaker(self.settings.database_url).begin() as s:
            return booking.schedule(s, self.settings, at=at, **fields).stream

    def row(self, stream_id: uuid.UUID) -> ScheduledStream:
        with get_sessionmaker(self.settings.database_url)() as s:
            row = s.get(ScheduledStream, stream_id)
            assert row is not None
            return row

    def attempts(self, stream_id: uuid.UUID, *, tracking: bool = False) -> list[StartAttempt]:
        """The booking's calls: those of its start only, unless ``tracking`` (a started row's
        status checks begin seconds later, whenever the test happens to look)."""
        with get_sessionmaker(self.settings.database_url)() as s:
            query = select(StartAttempt).where(StartAttempt.stream_id == stream_id)
            if not tracking:
                query = query.where(StartAttempt.action.not_in(["status", "stop"]))
            return list(s.scalars(query.order_by(StartAttempt.number)))

    def wait_state(
        self, stream_id: uuid.UUID, *states: str, timeout: float = 40
    ) -> ScheduledStream:
        try:
            return wait_until(
                lambda: (r := self.row(stream_id)).state in states and r,
                timeout,
                f"{stream_id} to reach {states}",
            )
        except TimeoutError:
            print(self.celery.logs())
            raise

    def requests_for(self, meeting: uuid.UUID | str, endpoint: str = "start") -> list[Any]:
        return [
            r for r in self.fake.requests if r.meeting_id == str(meeting) and r.endpoint == endpoint
        ]

    def created_for(self, meeting: uuid.UUID | str) -> list[Any]:
        return self.fake.created.get(str(meeting), [])


def _backend(kind: str, tmp: Path, broker: str | None) -> Iterator[tuple[str, str]]:
    """(database URL, broker URL); a given ``broker`` is the caller's, left untouched."""
    if kind == "sqlite":
        url = sqlite_database(tmp / "livestreams.db")
        yield url, broker or f"sqla+sqlite:///{tmp / 'broker.db'}"
        return
    if broker is not None:
        with fresh_pg_database("livestreams_pipeline") as url:
            yield url, broker
        return
    # A Redis of the run's own: a shared one (even a database of it) lets two test runs at
    # once, in two checkouts, take each other's start messages.
    with own_redis(tmp) as server, fresh_pg_database("livestreams_pipeline") as url:
        yield url, server.url


@contextmanager
def pipeline_for(
    kind: str,
    tmp: Path,
    *,
    env: dict[str, str] | None = None,
    workers: int = 1,
    beats: int = 1,
    embedded_beat: bool = False,
    beat_loglevel: str = "INFO",
) -> Iterator[Pipeline]:
    """The fake API plus ``workers`` celery workers and ``beats`` beats, stopped afterwards.

    ``embedded_beat`` runs beat inside the first worker (`celery -A worker worker -B`).

    ``env`` overrides the product settings given to every process (broker URL included).
    """
    backend = _backend(kind, tmp, (env or {}).get("LIVESTREAMS_BROKER_URL"))
    db_url, broker_url = next(backend)
    try:
        with FakeRealtimeKit(token=TOKEN, hang_seconds=5.0) as fake:
            full = {
                **ENV,
                "LIVESTREAMS_DATABASE_URL": db_url,
                "LIVESTREAMS_BROKER_URL": broker_url,
                "LIVESTREAMS_SECRET_KEY": new_key(),
                "CLOUDFLARE_BASE_URL": fake.base_url,
                **(env or {}),
            }
            celery = Celery(full, tmp)
            try:
                for i in range(1, workers + 1):
                    celery.worker(f"worker-{i}", with_beat=embedded_beat and i == 1)
                for i in range(1, beats + 1):
                    # Not waited for: below INFO a beat logs nothing to wait for.
                    celery.beat(f"beat-{i}", loglevel=beat_loglevel, wait=False)
                yield Pipeline(Settings.from_env(full), full, fake, celery)
            finally:
                celery.stop()
                dispose_all()
    finally:
        next(backend, None)
