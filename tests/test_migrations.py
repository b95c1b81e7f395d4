"""Migrations build the schema the models describe, on SQLite and PostgreSQL, both ways."""

from __future__ import annotations

import subprocess
import sys
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Integer, String, Uuid, column, create_engine, inspect, select, table

from models import Base, UTCDateTime
from worker.cli.migrate import downgrade, upgrade

ROOT = Path(__file__).resolve().parent.parent


def _diff(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn, warnings.catch_warnings():
            # SQLAlchemy cannot reflect SQLite's expression indexes (lower(external_ref)), and
            # alembic then leaves them out of the comparison; PostgreSQL compares them.
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression")
            warnings.filterwarnings("ignore", "autogenerate skipping")
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(ctx, Base.metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_models_and_migrations_do_not_drift(db_url: str) -> None:
    assert _diff(db_url) == []


def test_downgrade_to_base_and_upgrade_round_trip(db_url: str) -> None:
    downgrade(db_url, "base")
    assert _tables(db_url) == set()
    upgrade(db_url)
    assert _tables(db_url) == {t.name for t in Base.metadata.sorted_tables}
    assert _diff(db_url) == []


def test_alembic_command_line_upgrades_and_checks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"LIVESTREAMS_DATABASE_URL": url, "PATH": str(Path(sys.executable).parent)}
    alembic = [sys.executable, "-m", "alembic"]
    subprocess.run(
        [*alembic, "upgrade", "head"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    check = subprocess.run([*alembic, "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr


# scheduled_streams and start_attempts as revision 0001 made them (the models have moved on).
STREAMS_0001 = table(
    "scheduled_streams",
    *(column(name, String) for name in ("account_id", "app_id", "timezone", "state")),
    column("id", Uuid),
    column("meeting_id", Uuid),
    *(column(name, UTCDateTime()) for name in ("scheduled_at", "start_deadline", "due_at")),
    *(column(name, UTCDateTime()) for name in ("created_at", "updated_at")),
    column("attempts", Integer),
)
ATTEMPTS_0001 = table(
    "start_attempts",
    column("stream_id", Uuid),
    column("number", Integer),
    column("action", String),
    column("sent_at", UTCDateTime()),
)
AT = datetime(2031, 5, 1, 18, 0, tzinfo=UTC)


def test_a_row_stored_at_0001_gets_its_window_at_0002_and_keeps_it_down_and_up(
    db_url: str,
) -> None:
    downgrade(db_url, "0001")
    windows = {
        uuid.uuid4(): (timedelta(minutes=15), AT, 900.0),
        uuid.uuid4(): (timedelta(seconds=1234, microseconds=567891), AT, 1234.567891),
        # Retried before the upgrade: the deadline had moved with due_at, and the window the
        # old code derived (deadline - scheduled_at) is all there is to keep.
        uuid.uuid4(): (timedelta(hours=10, minutes=15), AT + timedelta(hours=10), 36900.0),
    }
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            for ident, (window, due, _) in windows.items():
                conn.execute(
                    STREAMS_0001.insert().values(
                        id=ident, account_id="a", app_id="b", timezone="UTC", state="retrying",
                        meeting_id=uuid.uuid4(), scheduled_at=AT, start_deadline=AT + window,
                        due_at=due, created_at=AT, updated_at=AT, attempts=1,
                    )
                )  # fmt: skip
                conn.execute(
                    ATTEMPTS_0001.insert().values(
                        stream_id=ident, number=1, action="start", sent_at=AT
                    )
                )
        upgrade(db_url)
        streams = Base.metadata.tables["scheduled_streams"]
        with engine.connect() as conn:
            stored = dict(conn.execute(select(streams.c.id, streams.c.start_window)).all())
            attempts = conn.execute(select(ATTEMPTS_0001.c.stream_id)).scalars().all()
        assert stored == {ident: seconds for ident, (_, _, seconds) in windows.items()}
        assert sorted(attempts) == sorted(windows)  # SQLite's table copy kept the attempts
        downgrade(db_url, "0001")
        with engine.connect() as conn:
            assert len(conn.execute(select(STREAMS_0001.c.id)).all()) == len(windows)
    finally:
        engine.dispose()
        upgrade(db_url)
    assert _diff(db_url) == []


OLD_STATES = ("scheduled", "starting", "retrying", "started", "failed", "missed", "cancelled")


def test_rows_in_every_state_at_0004_survive_the_lifecycle_upgrade_and_back(db_url: str) -> None:
    downgrade(db_url, "0004")
    streams_0004 = table(
        "scheduled_streams",
        *(column(n, String) for n in ("account_id", "app_id", "timezone", "state")),
        *(column(n, String) for n in ("livestream_id", "livestream_status")),
        column("id", Uuid),
        column("meeting_id", Uuid),
        column("start_window", Integer),
        *(column(n, UTCDateTime()) for n in ("scheduled_at", "start_deadline", "due_at")),
        *(column(n, UTCDateTime()) for n in ("created_at", "updated_at", "started_at")),
        column("attempts", Integer),
    )
    ids = {state: uuid.uuid4() for state in OLD_STATES}
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            for state, ident in ids.items():
                started = state == "started"
                conn.execute(
                    streams_0004.insert().values(
                        id=ident, account_id="a", app_id="b", timezone="UTC", state=state,
                        meeting_id=uuid.uuid4(), scheduled_at=AT, start_deadline=AT,
                        start_window=900, due_at=AT, created_at=AT, updated_at=AT,
                        attempts=1 if state not in ("scheduled", "missed") else 0,
                        livestream_id="ls-1" if started else None,
                        livestream_status="INVOKED" if started else None,
                        started_at=AT if started else None,
                    )
                )  # fmt: skip
                if state not in ("scheduled", "missed"):
                    conn.execute(
                        ATTEMPTS_0001.insert().values(
                            stream_id=ident, number=1, action="start", sent_at=AT
                        )
                    )
        upgrade(db_url)
        streams = Base.metadata.tables["scheduled_streams"]
        events = Base.metadata.tables["stream_status_events"]
        with engine.connect() as conn:
            stored = dict(conn.execute(select(streams.c.id, streams.c.state)).all())
            observed = conn.execute(
                select(streams.c.status_observed_at).where(streams.c.id == ids["started"])
            ).scalar_one()
            timeline = conn.execute(
                select(events.c.stream_id, events.c.status, events.c.source, events.c.observed_at)
            ).all()
            attempts = conn.execute(select(ATTEMPTS_0001.c.stream_id)).scalars().all()
        assert stored == {ident: state for state, ident in ids.items()}
        assert observed == AT
        assert [tuple(r) for r in timeline] == [(ids["started"], "INVOKED", "start", AT)]
        assert len(attempts) == len(OLD_STATES) - 2
        # Rows the new code moved on: live and ended read as started to the old schema.
        with engine.begin() as conn:
            conn.execute(
                streams.update()
                .where(streams.c.id == ids["started"])
                .values(state="ended", end_reason="scheduled_stop", ended_at=AT)
            )
        downgrade(db_url, "0004")
        with engine.connect() as conn:
            back = dict(conn.execute(select(streams_0004.c.id, streams_0004.c.state)).all())
        assert back == {ident: state for state, ident in ids.items()}
    finally:
        engine.dispose()
        upgrade(db_url)
    assert _diff(db_url) == []


def _booking(conn, ident: uuid.UUID) -> None:
    conn.execute(
        Base.metadata.tables["scheduled_streams"].insert().values(
            id=ident, account_id="a", app_id="b", timezone="UTC", state="ended",
            meeting_id=uuid.uuid4(), scheduled_at=AT, start_deadline=AT, start_window=900,
            due_at=AT, created_at=AT, updated_at=AT, attempts=1, reclaims=0,
            end_reason="scheduled_stop", ended_at=AT,
        )
    )  # fmt: skip


def _webhook_rows(conn, stream: uuid.UUID, deliveries: dict[uuid.UUID, tuple[bool, str]]) -> None:
    """One event of ``stream``, and per delivery id an endpoint (enabled?) and a delivery in
    the given state, with one attempt each."""
    tables = Base.metadata.tables
    event = uuid.uuid4()
    conn.execute(
        tables["webhook_events"]
        .insert()
        .values(id=event, type="stream.ended", stream_id=stream, payload="{}", created_at=AT)
    )
    for delivery, (enabled, state) in deliveries.items():
        endpoint = uuid.uuid4()
        conn.execute(
            tables["webhook_endpoints"].insert().values(
                id=endpoint, url="https://example.com/h", event_types="stream.ended",
                secret_ciphertext="x", enabled=enabled, created_at=AT, updated_at=AT,
                failures_in_a_row=0,
            )
        )  # fmt: skip
        conn.execute(
            tables["webhook_deliveries"].insert().values(
                id=delivery, event_id=event, endpoint_id=endpoint, state=state, attempts=1,
                due_at=AT, created_at=AT, updated_at=AT,
            )
        )  # fmt: skip
        conn.execute(
            tables["webhook_attempts"]
            .insert()
            .values(delivery_id=delivery, number=1, sent_at=AT, status=503)
        )


def test_rows_at_0005_survive_the_webhooks_upgrade_and_back(db_url: str) -> None:
    """0006 adds tables only: bookings and their history are untouched both ways, and the
    new tables take rows that the downgrade then drops."""
    downgrade(db_url, "0005")
    streams = Base.metadata.tables["scheduled_streams"]
    ids = [uuid.uuid4() for _ in range(3)]
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            for ident in ids:
                _booking(conn, ident)
        upgrade(db_url)
        with engine.begin() as conn:
            assert sorted(conn.execute(select(streams.c.id)).scalars()) == sorted(ids)
            _webhook_rows(conn, ids[0], {uuid.uuid4(): (True, "pending")})
        downgrade(db_url, "0005")
        assert not {"webhook_endpoints", "webhook_events"} & _tables(db_url)
        with engine.connect() as conn:
            states = conn.execute(select(streams.c.state)).scalars().all()
        assert states == ["ended"] * 3
    finally:
        engine.dispose()
        upgrade(db_url)
    assert _diff(db_url) == []


def test_a_disabled_endpoints_pending_deliveries_are_held_at_0008_and_pending_again_below(
    db_url: str,
) -> None:
    downgrade(db_url, "0007")
    deliveries = Base.metadata.tables["webhook_deliveries"]
    waiting, parked, done = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    stream = uuid.uuid4()
    engine = create_engine(db_url)

    def states() -> dict[uuid.UUID, str]:
        with engine.connect() as conn:
            query = select(deliveries.c.id, deliveries.c.state)
            return {ident: state for ident, state in conn.execute(query).tuples()}

    try:
        with engine.begin() as conn:
            _booking(conn, stream)
            rows = {waiting: (True, "pending"), parked: (False, "pending"), done: (False, "failed")}
            _webhook_rows(conn, stream, rows)
        upgrade(db_url)
        assert states() == {waiting: "pending", parked: "held", done: "failed"}
        downgrade(db_url, "0007")
        assert states() == {waiting: "pending", parked: "pending", done: "failed"}
    finally:
        engine.dispose()
        upgrade(db_url)
    assert _diff(db_url) == []


def test_rows_at_0008_survive_the_security_upgrade_and_back(db_url: str) -> None:
    """0009: endpoints from before belong to no key (ops manages them), provider deliveries
    from before have no body digest, and ended sessions go with the downgrade."""
    downgrade(db_url, "0008")
    tables = Base.metadata.tables
    endpoints, received = tables["webhook_endpoints"], tables["provider_webhooks"]
    stream, delivery = uuid.uuid4(), uuid.uuid4()
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            _booking(conn, stream)
            _webhook_rows(conn, stream, {delivery: (True, "pending")})
            conn.execute(
                received.insert().values(
                    delivery_id="d-1", event="livestreaming.statusUpdate", received_at=AT,
                    result="applied",
                )
            )  # fmt: skip
        upgrade(db_url)
        with engine.begin() as conn:
            assert conn.execute(select(endpoints.c.api_key_id)).scalars().all() == [None]
            assert conn.execute(select(received.c.body_sha256)).scalars().all() == [None]
            key = uuid.uuid4()
            conn.execute(
                tables["api_keys"]
                .insert()
                .values(id=key, name="k", prefix="p", hash="h", scopes="ops", created_at=AT)
            )
            conn.execute(
                tables["ended_ops_sessions"]
                .insert()
                .values(session_id="s", api_key_id=key, ended_at=AT, expires_at=AT)
            )
        downgrade(db_url, "0008")
        assert "ended_ops_sessions" not in _tables(db_url)
        with engine.connect() as conn:
            assert conn.execute(select(received.c.delivery_id)).scalars().all() == ["d-1"]
    finally:
        engine.dispose()
        upgrade(db_url)
    assert _diff(db_url) == []
