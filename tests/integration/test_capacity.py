"""The capacity forecast on booking: 1,500 streams at one instant on a 1,200 / 5 min token.

The dispatcher allows itself 90 % of the limit (1,080 calls per 5 min, worker.upstream.pacing):
the booking that makes the 1,081st start at one instant is the one that crosses the line. The
rows before it are written in bulk, not booked one by one.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from models import ScheduledStream, Series, StreamState
from models.db import get_sessionmaker
from tests.acceptance.test_cli import MEETING, run
from tests.http_api import Api

T = datetime(2031, 1, 6, 18, 0, tzinfo=UTC)  # a Monday, 19:00 in Berlin
STAMP = "2031-01-06T18:00:00.000Z"
PROBLEM = "application/problem+json"


def bulk(url: str, count: int, at: datetime = T, window: float = 120.0) -> None:
    """``count`` scheduled bookings due at ``at``, in one statement."""
    rows = [
        {
            "id": uuid.uuid4(),
            "account_id": "acct",
            "app_id": "app",
            "meeting_id": uuid.uuid4(),
            "scheduled_at": at,
            "timezone": "UTC",
            "start_deadline": at + timedelta(seconds=window),
            "start_window": window,
            "due_at": at,
            "created_at": at,
            "updated_at": at,
            "state": StreamState.SCHEDULED.value,
            "attempts": 0,
        }
        for _ in range(count)
    ]
    with get_sessionmaker(url).begin() as s:
        s.execute(insert(ScheduledStream), rows)


def count(url: str, at: datetime = T) -> int:
    with get_sessionmaker(url)() as s:
        return s.scalar(select(func.count()).where(ScheduledStream.scheduled_at == at)) or 0


@pytest.fixture
def api(settings) -> Api:
    return Api(settings)


def test_the_booking_that_crosses_the_budget_is_warned_and_a_strict_one_refused(api, env) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    writer = api.auth("bookings:write")

    def book(**extra):
        body = {"meeting_id": str(uuid.uuid4()), "at": STAMP, "start_window": 120, **extra}
        return api.client.post("/v1/bookings", json=body, headers=writer)

    bulk(url, 1079)
    last_fit = book()
    assert last_fit.status_code == 201 and last_fit.json()["warnings"] == []
    crossing = book()
    assert crossing.status_code == 201
    assert crossing.json()["warnings"] == [
        f"{STAMP}: 1,081 starts due, 1,080 fit the token's budget (1,080 calls / 300 s) at the "
        "instant; 1 would be missed (not started within the 120 s start window)"
    ]
    bulk(url, 1499 - 1081)
    fifteen_hundredth = book()
    assert fifteen_hundredth.status_code == 201
    (warning,) = fifteen_hundredth.json()["warnings"]
    assert warning.startswith(f"{STAMP}: 1,500 starts due, 1,080 fit")
    assert warning.endswith("420 would be missed (not started within the 120 s start window)")

    refused = api.client.post(
        "/v1/bookings?strict=true",
        json={"meeting_id": MEETING, "at": STAMP, "start_window": 120, "ref": "strict-one"},
        headers=writer,
    )
    assert refused.status_code == 409 and refused.headers["content-type"] == PROBLEM
    problem = refused.json()
    assert problem["errors"][0]["field"] == "strict"
    assert "1,501 starts due" in problem["detail"] and "421 would be missed" in problem["detail"]
    assert count(url) == 1500  # the strict booking was not stored

    # Another instant, booked with the default 15-minute window: late, not missed.
    later, stamp = T + timedelta(hours=2), "2031-01-06T20:00:00.000Z"
    bulk(url, 1499, later, 900.0)
    body = {"meeting_id": MEETING, "at": stamp}
    (late,) = api.client.post("/v1/bookings", json=body, headers=writer).json()["warnings"]
    assert late == (
        f"{stamp}: 1,500 starts due, 1,080 fit the token's budget (1,080 calls / 300 s) at the "
        "instant; 420 would start late (up to 300 s)"
    )


def test_cli_warns_on_stderr_and_strict_exits_2_storing_nothing(env) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    bulk(url, 1080)
    code, out, err = run("schedule", "--meeting-id", MEETING, "--at", STAMP,
                         "--start-window", "120", "--ref", "cli-1")  # fmt: skip
    assert code == 0 and out.startswith("booked")
    assert err == (
        f"livestreams: warning: capacity: {STAMP}: 1,081 starts due, 1,080 fit the token's "
        "budget (1,080 calls / 300 s) at the instant; 1 would be missed (not started within "
        "the 120 s start window)\n"
    )
    code, out, err = run("schedule", "--meeting-id", MEETING, "--at", STAMP,
                         "--start-window", "120", "--ref", "cli-2", "--strict")  # fmt: skip
    assert code == 2 and out == ""
    assert err.startswith("livestreams: error: strict: the token's budget cannot start these")
    assert count(url) == 1081
    # The same ref again is no new start: no warning.
    code, _, err = run("schedule", "--meeting-id", MEETING, "--at", STAMP,
                       "--start-window", "120", "--ref", "cli-1", "--strict")  # fmt: skip
    assert code == 0 and err == ""


def test_a_strict_series_whose_occurrence_crosses_the_budget_is_refused_whole(
    settings, env
) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    api = Api(dataclasses.replace(settings, series_horizon_days=2000))  # occurrences in 2031
    bulk(url, 1080, window=900.0)
    writer = api.auth("bookings:write")
    body = {
        "ref": "weekly",
        "meeting_id": MEETING,
        "rule": "FREQ=WEEKLY;BYDAY=MO;COUNT=3",
        "at": "19:00",
        "tz": "Europe/Berlin",
        "duration": "1h",
        "first": "2031-01-06",
    }
    refused = api.client.post("/v1/series?strict=true", json=body, headers=writer)
    assert refused.status_code == 409, refused.text
    assert f"{STAMP}: 1,081 starts due" in refused.json()["detail"]
    with get_sessionmaker(url)() as s:
        assert s.scalar(select(func.count()).select_from(Series)) == 0
    assert count(url) == 1080
    warned = api.client.post("/v1/series", json=body, headers=writer)
    assert warned.status_code == 201 and warned.json()["made"] == 3
    (warning,) = warned.json()["warnings"]
    assert warning.startswith(f"{STAMP}: 1,081 starts due") and "1 would start late" in warning


def test_capacity_lists_the_windows_at_risk_first(api, env) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    bulk(url, 100, T - timedelta(hours=1), 900.0)
    bulk(url, 1500)
    code, out, err = run("capacity", "--from", "2031-01-06T00:00:00Z", "--to",
                         "2031-01-07T00:00:00Z")  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("budget: 1,080 calls / 300 s; a start costs 1 calls")
    assert lines[2].split() == ["WINDOW", "(UTC)", "STARTS", "CALLS", "BUDGET", "LATE", "MISSED"]
    assert lines[3].startswith("2031-01-06T18:00:00.000Z - 2031-01-06T18:05:00.000Z")
    assert lines[3].split()[-7:] == ["1,500", "1,500", "1,080", "0", "420", "AT", "RISK"]
    assert "420 would be missed" in lines[4]
    assert lines[5].startswith("2031-01-06T17:00:00.000Z") and "AT RISK" not in lines[5]

    answer = api.client.get(
        "/v1/capacity?from=2031-01-06T00:00:00Z&to=2031-01-07T00:00:00Z",
        headers=api.auth("bookings:read"),
    )
    assert answer.status_code == 200
    data = answer.json()
    assert data["from"] == "2031-01-06T00:00:00.000Z" and data["budget"]["calls"] == 1080
    assert [(w["start"], w["missed"], w["at_risk"]) for w in data["windows"]] == [
        ("2031-01-06T18:00:00.000Z", 420, True), ("2031-01-06T17:00:00.000Z", 0, False)
    ]  # fmt: skip
    assert json.loads(run("capacity", "--json", "--from", "2031-01-06T00:00:00Z")[1])["windows"]
