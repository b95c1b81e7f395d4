"""A booking made over HTTP starts on time: `livestreams serve` as a real process beside real
`celery beat` and `celery worker` processes, on PostgreSQL and Redis, against the fake API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from models.db import get_sessionmaker
from tests.pipeline import pipeline_for
from tests.processes import free_port, wait_until
from worker.http import apikeys

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_booking_made_over_http_starts_and_its_key_is_revealed_once_asked(
    tmp_path: Path,
) -> None:
    with pipeline_for("postgresql", tmp_path) as pipeline:
        port = free_port()
        pipeline.celery.serve("serve", port)
        with get_sessionmaker(pipeline.settings.database_url).begin() as session:
            scopes = [apikeys.BOOKINGS_READ, apikeys.BOOKINGS_WRITE]
            _, platform = apikeys.create(session, name="platform", scopes=scopes)
            _, revealer = apikeys.create(
                session, name="revealer", scopes=[apikeys.STREAM_KEYS_READ]
            )
        meeting = str(uuid.uuid4())
        at = datetime.now(UTC) + timedelta(seconds=3)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            made = client.post(
                "/v1/bookings",
                json={"meeting_id": meeting, "at": at.isoformat(), "name": "over-http"},
                headers=_bearer(platform),
            )
            assert made.status_code == 201, made.text
            assert made.headers["Location"] == f"/v1/bookings/{made.json()['id']}"
            path = made.headers["Location"]

            def started() -> dict | None:
                pipeline.celery.check_alive()
                shown = client.get(path, headers=_bearer(platform))
                assert shown.status_code == 200, shown.text
                return shown.json() if shown.json()["state"] == "started" else None

            try:
                shown = wait_until(started, 40, "the booking to be started", interval=0.3)
            except TimeoutError:
                print(pipeline.celery.logs())
                raise
            (created,) = pipeline.created_for(meeting)
            assert len(pipeline.requests_for(meeting)) == 1
            assert shown["livestream_id"] == created.id
            assert shown["stream_key"] == "****" + created.stream_key[-4:]
            assert [a["outcome"] for a in shown["attempt_log"] if a["action"] == "start"] == [
                "started"
            ]

            refused = client.get(f"{path}/stream-key", headers=_bearer(platform))
            assert refused.status_code == 403
            revealed = client.get(f"{path}/stream-key", headers=_bearer(revealer))
            assert revealed.status_code == 200, revealed.text
            assert revealed.json() == {"id": shown["id"], "stream_key": created.stream_key}

        served = pipeline.celery.log("serve").read_text()
        assert "stream key of booking" in served  # the reveal is logged, by key name
        for secret in (platform, revealer, created.stream_key):
            assert secret not in served
