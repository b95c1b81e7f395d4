"""Retrying a failed booking from the ops page starts it: chromium against a real `livestreams
serve`, with real `celery worker` and `celery beat` processes and the fake API; the processes
page lists those processes from their own heartbeats."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.db import get_sessionmaker
from tests.browser.conftest import sign_in
from tests.ops_rows import REFUSAL, fail
from tests.pipeline import pipeline_for
from tests.processes import free_port, wait_until
from worker.http import apikeys

pytestmark = pytest.mark.slow


def test_retry_a_failed_booking_and_see_it_start(tmp_path: Path, page) -> None:
    from playwright.sync_api import expect

    with pipeline_for("sqlite", tmp_path) as pipeline:
        port = free_port()
        pipeline.celery.serve("serve", port)
        base = f"http://127.0.0.1:{port}"
        with get_sessionmaker(pipeline.settings.database_url).begin() as s:
            _, key = apikeys.create(s, name="ops-desk", scopes=[apikeys.OPS])
        booked = pipeline.book(seconds=3600, external_ref="evt-second-chance")
        fail(pipeline.settings.database_url, booked.id)

        sign_in(page, base, key)
        page.goto(f"{base}/ops/bookings/{booked.id}")
        expect(page.locator(".why")).to_contain_text(f"failed after 1 start call(s): {REFUSAL}")
        page.get_by_role("link", name="Retry…").click()
        page.get_by_role("button", name="Retry").click()
        expect(page.get_by_role("status")).to_have_text("Retry booked.")

        def started() -> bool:
            pipeline.celery.check_alive()
            page.reload()
            return "started" in (page.locator(".why").text_content() or "")

        try:
            wait_until(started, 40, "the retried booking to start", interval=0.5)
        except TimeoutError:
            print(pipeline.celery.logs())
            raise
        expect(page.locator(".why")).to_contain_text("started on start call 2")
        outcomes = page.get_by_role("table").get_by_role("row")
        expect(outcomes).to_have_count(3)  # the header, the refusal, the start that worked
        expect(outcomes.nth(2)).to_contain_text("started")
        assert len(pipeline.created_for(booked.meeting_id)) == 1

        # The worker's two pool processes and beat, each from its own heartbeat row, alive.
        page.get_by_role("link", name="Processes").click()
        processes = page.get_by_role("row").filter(has_text=" pid ")
        expect(processes).to_have_count(3)
        expect(processes.filter(has_text="beat")).to_have_count(1)
        workers = processes.filter(has_text="livestreams.start")
        expect(workers).to_have_count(2)
        expect(workers.first).to_contain_text("livestreams.follow")
        expect(page.get_by_text("dead", exact=True)).to_have_count(0)
