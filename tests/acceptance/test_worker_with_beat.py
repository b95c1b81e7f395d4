"""`celery -A worker worker -B`: one process that ticks and starts, as on a single box."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import StreamState
from tests.pipeline import pipeline_for

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_worker_with_embedded_beat_starts_a_booking_once(kind: str, tmp_path: Path) -> None:
    with pipeline_for(kind, tmp_path, beats=0, embedded_beat=True) as pipeline:
        stream = pipeline.book(2.0, name="embedded-beat")
        row = pipeline.wait_state(stream.id, StreamState.STARTED)
        assert row.livestream_id is not None
        created = pipeline.created_for(stream.meeting_id)
        assert [c.id for c in created] == [row.livestream_id]
        log = pipeline.celery.log("worker-1").read_text()
        assert "beat: Starting..." in log
        # One line for the start besides Celery's own; no line a second for the idle ticks.
        assert f"livestream {row.livestream_id} for booking {stream.id} (started)" in log
        assert "livestreams.launch[" in log
        assert "livestreams.dispatch_due[" not in log
        assert "Sending due task dispatch-due" not in log
        assert "HTTP Request:" not in log
