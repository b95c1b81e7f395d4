"""`livestreams demo` end to end: every booking reaches its case's end (one goes live, one is
stopped at its end), and its HTTP API answers while it runs."""

from __future__ import annotations

import contextlib
import re
import socket
from pathlib import Path

import httpx
import pytest

from worker.dev.demo import CASES, DEMO_API_PORT, run_demo

pytestmark = pytest.mark.slow
DONE = "every booking has reached what its case is about"
CURL = re.compile(r"Bearer (lsk_\S+)' (http://127\.0\.0\.1:\d+)/v1/bookings")


def test_the_demo_ends_every_booking_and_serves_them_over_http(tmp_path: Path) -> None:
    lines: list[str] = []
    listed: list[httpx.Response] = []

    def echo(line: str) -> None:
        lines.append(line)
        # Asked here, outside the demo's own transactions (SQLite: one writer at a time), and
        # before the demo stops its processes.
        if line.strip() == DONE:
            key, base = _served(lines)
            listed.append(
                httpx.get(f"{base}/v1/bookings", headers={"Authorization": f"Bearer {key}"})
            )

    # The demo prefers port 8000 for its API: two test runs at once (two checkouts) both saw it
    # free and one demo's serve then failed to bind. Held here, so every run takes the demo's
    # fallback (a free port it picks), which is what the test reads from the curl line anyway.
    with socket.socket() as held:
        with contextlib.suppress(OSError):  # already taken: the demo falls back all the same
            held.bind(("127.0.0.1", DEMO_API_PORT))
            held.listen()
        code = run_demo(tmp_path / "demo", 90, echo)
    out = "\n".join(lines)
    assert code == 0, out
    assert DONE in out
    stopped = out.split("[booked for 6 s: goes live, stopped at its end]")[-1]
    assert "ended" in stopped and "stopped at its ends_at" in stopped, out
    assert "LIVE (poll)" in out or "LIVE (webhook)" in out
    # The demo's platform got its events, each signature checked by the receiver's own code.
    assert "platform: booking.failed for" in out and "platform: stream.ended for" in out
    assert "did not verify" not in out
    (answer,) = listed
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["items"]) == len(CASES)
    served = (tmp_path / "demo" / "serve.log").read_text()
    assert "Finished server process" in served  # stopped with the rest
    key, _ = _served(lines)
    assert key not in served


def _served(lines: list[str]) -> tuple[str, str]:
    (match,) = [m for line in lines if (m := CURL.search(line))]
    return match.group(1), match.group(2)
