"""/v1/bookings over a livestream's whole life: its end, stop, the timeline, the problem filter,
and /v1/status's counts; through FastAPI's TestClient on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from models.db import get_sessionmaker
from tests.dbdump import dump
from tests.http_api import AT, MEETING, Api
from tests.lifecycle_rows import follow
from worker.dispatch import tick

PROBLEM = "application/problem+json"


@pytest.fixture
def api(settings) -> Api:
    return Api(settings)


@pytest.fixture
def writer(api) -> dict[str, str]:
    return api.auth("bookings:write", "bookings:read")


def _problem(answer, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    return answer.json()


# -- the end, when booking and rescheduling --------------------------------------------------
@pytest.mark.parametrize(
    "end",
    [
        {"duration": 5400},
        {"duration": 5400.0},
        {"duration": "1h30m"},
        {"ends_at": "2031-01-01T11:30:00Z"},
        {"ends_at": "2031-01-01 20:30", "tz": "Asia/Tokyo"},
    ],
)
def test_book_with_an_end(api, writer, end) -> None:
    booked = api.book(writer, **end)
    assert booked["ends_at"] == "2031-01-01T11:30:00Z"
    assert booked["duration_seconds"] == 5400
    shown = api.client.get(f"/v1/bookings/{booked['id']}", headers=writer).json()
    assert shown["ends_at"] == "2031-01-01T11:30:00Z"


@pytest.mark.parametrize(
    ("end", "field", "fragment"),
    [
        ({"ends_at": "2031-01-01T09:00:00Z"}, "ends_at", "is not after the start"),
        ({"ends_at": "2031-01-02T10:00:01Z"}, "ends_at", "LIVESTREAMS_MAX_DURATION"),
        ({"ends_at": "2031-01-01 11:00"}, "ends_at", "has no UTC offset"),
        ({"ends_at": 3600}, "ends_at", "string"),
        ({"duration": "1 hour"}, "duration", "is not a duration"),
        ({"duration": 0}, "duration", "must be positive"),
        ({"duration": 90000}, "duration", "at most 1d"),
        ({"duration": True}, "duration", "must be seconds or a form like 1h30m"),
        ({"duration": [3600]}, "duration", "must be seconds or a form like 1h30m"),
        ({"duration": {"h": 1}}, "duration", "must be seconds or a form like 1h30m"),
        ({"duration": "1h", "ends_at": "2031-01-01T11:00:00Z"}, "ends_at", "not both"),
    ],
)
def test_a_bad_end_is_422_naming_the_field_and_stores_nothing(
    api, writer, env, end, field, fragment
):
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    answer = api.client.post(
        "/v1/bookings", json={"meeting_id": MEETING, "at": AT, **end}, headers=writer
    )
    problem = _problem(answer, 422)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert fragment in problem["detail"], problem["detail"]
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before


def test_the_same_ref_with_another_length_is_409_naming_it(api, writer, env) -> None:
    first = api.book(writer, ref="evt-1", duration="1h")
    body = {"meeting_id": MEETING, "at": AT, "ref": "evt-1"}
    again = api.client.post("/v1/bookings", json={**body, "duration": 3600}, headers=writer)
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    conflict = api.client.post("/v1/bookings", json={**body, "duration": "2h"}, headers=writer)
    assert [e["field"] for e in _problem(conflict, 409)["errors"]] == ["duration"]
    conflict = api.client.post(
        "/v1/bookings", json={**body, "ends_at": "2031-01-01T12:00:00Z"}, headers=writer
    )
    assert [e["field"] for e in _problem(conflict, 409)["errors"]] == ["ends_at"]
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before


def test_reschedule_keeps_the_length_or_takes_a_new_one(api, writer, env) -> None:
    booked = api.book(writer, duration="1h")
    path = f"/v1/bookings/{booked['id']}/reschedule"

    def moved(**fields: object) -> str:
        answer = api.client.post(
            path, json={"at": "2031-01-02T10:00:00Z", **fields}, headers=writer
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["ends_at"]

    assert moved() == "2031-01-02T11:00:00Z"
    assert moved(duration=1800) == "2031-01-02T10:30:00Z"
    assert moved(ends_at="2031-01-02T13:00:00Z") == "2031-01-02T13:00:00Z"
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    refused = api.client.post(path, json={"at": AT, "duration": "soon"}, headers=writer)
    assert [e["field"] for e in _problem(refused, 422)["errors"]] == ["duration"]
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before


# -- stop ------------------------------------------------------------------------------------
def test_stop_is_202_once_then_409_with_the_reason(api, writer, env) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    booked = api.book(writer)
    path = f"/v1/bookings/{booked['id']}/stop"
    early = _problem(api.client.post(path, headers=writer), 409)
    assert early["detail"] == "state: booking is scheduled: nothing to stop yet (cancel it instead)"
    assert early["errors"] == [
        {
            "field": "state",
            "message": "booking is scheduled: nothing to stop yet (cancel it instead)",
        }
    ]

    follow(url, uuid.UUID(booked["id"]), "started")
    accepted = api.client.post(path, headers=writer)
    assert accepted.status_code == 202, accepted.text
    stopped = accepted.json()
    assert stopped["id"] == booked["id"] and stopped["state"] == "started"
    assert stopped["stop_requested_at"] is not None
    assert stopped["due_at"] == stopped["stop_requested_at"]

    before = dump(url)
    again = _problem(api.client.post(path, headers=writer), 409)
    assert again["errors"] == [
        {
            "field": "stop_requested_at",
            "message": f"a stop was already requested at {stopped['stop_requested_at']}",
        }
    ]
    assert dump(url) == before


def test_stop_needs_bookings_write_and_a_booking(api, writer, env) -> None:
    booked = api.book(writer)
    follow(env["LIVESTREAMS_DATABASE_URL"], uuid.UUID(booked["id"]), "live")
    reader = api.auth("bookings:read")
    before = dump(env["LIVESTREAMS_DATABASE_URL"])["scheduled_streams"]
    _problem(api.client.post(f"/v1/bookings/{booked['id']}/stop", headers=reader), 403)
    _problem(api.client.post(f"/v1/bookings/{booked['id']}/stop"), 401)
    _problem(api.client.post(f"/v1/bookings/{uuid.uuid4()}/stop", headers=writer), 404)
    assert dump(env["LIVESTREAMS_DATABASE_URL"])["scheduled_streams"] == before
    ops = api.auth("ops")  # ops includes bookings:write
    assert api.client.post(f"/v1/bookings/{booked['id']}/stop", headers=ops).status_code == 202


def test_stop_of_an_ended_booking_says_how_it_ended(api, writer, env) -> None:
    booked = api.book(writer)
    ended = datetime(2031, 1, 1, 11, tzinfo=UTC)
    follow(
        env["LIVESTREAMS_DATABASE_URL"], uuid.UUID(booked["id"]), "ended",
        ended_at=ended, end_reason="ops_stop",
    )  # fmt: skip
    answer = api.client.post(f"/v1/bookings/{booked['id']}/stop", headers=writer)
    assert (
        _problem(answer, 409)["detail"] == "state: already ended (ops_stop at 2031-01-01T11:00:00Z)"
    )


# -- show ------------------------------------------------------------------------------------
def test_show_has_the_whole_life_and_the_timeline(api, writer, env) -> None:
    from tests.acceptance.test_cli import _store_started

    booked = api.book(writer, tz="Europe/Berlin", duration="2h")
    secret = "sk_live_0123456789abcdefSECRET"
    _store_started(env, booked["id"], secret)
    follow(
        env["LIVESTREAMS_DATABASE_URL"], uuid.UUID(booked["id"]), "live",
        seen=[("INVOKED", "start", 2), ("LIVE", "poll", 12)],
        live_at=datetime(2031, 1, 1, 10, 0, 12, tzinfo=UTC), problem="errored",
    )  # fmt: skip
    answer = api.client.get(f"/v1/bookings/{booked['id']}", headers=writer)
    assert answer.status_code == 200
    shown = answer.json()
    assert secret not in answer.text and shown["stream_key"].endswith("CRET")
    assert {k: shown[k] for k in (
        "state", "ends_at", "live_at", "ended_at", "end_reason", "stop_requested_at", "problem",
        "livestream_status", "status_observed_at",
    )} == {
        "state": "live", "ends_at": "2031-01-01T12:00:00Z", "live_at": "2031-01-01T10:00:12Z",
        "ended_at": None, "end_reason": None, "stop_requested_at": None, "problem": "errored",
        "livestream_status": "LIVE", "status_observed_at": "2031-01-01T10:00:12Z",
    }  # fmt: skip
    assert shown["why"].startswith("live since 2031-01-01T10:00:12Z; to be stopped at 2031-")
    assert shown["timeline"] == [
        {
            "observed_at": "2031-01-01T10:00:02Z",
            "observed_at_local": "2031-01-01T10:00:02Z (2031-01-01 11:00:02 CET, Europe/Berlin)",
            "status": "INVOKED",
            "source": "start",
        },
        {
            "observed_at": "2031-01-01T10:00:12Z",
            "observed_at_local": "2031-01-01T10:00:12Z (2031-01-01 11:00:12 CET, Europe/Berlin)",
            "status": "LIVE",
            "source": "poll",
        },
    ]


# -- list: state and problem filters, a page at a time ---------------------------------------
def test_list_by_problem_pages_through_the_flagged_rows_only(api, writer, env) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    base = datetime(2031, 1, 1, 10, tzinfo=UTC)
    flagged: list[str] = []
    for i in range(12):
        # Three share each instant, so the id breaks ties; every third is errored.
        booked = api.book(writer, at=(base + timedelta(minutes=i // 3)).isoformat())
        problem = "errored" if i % 3 == 1 else ("not_live" if i % 3 == 2 else None)
        follow(url, uuid.UUID(booked["id"]), "live" if i % 2 else "started", problem=problem)
        if problem == "errored":
            flagged.append(booked["id"])

    seen: list[str] = []
    params: dict[str, object] = {"problem": "errored", "limit": 1}
    while True:
        answer = api.client.get("/v1/bookings", params=params, headers=writer)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert all(r["problem"] == "errored" for r in page["items"])
        seen += [r["id"] for r in page["items"]]
        if page["next"] is None:
            break
        params = {**params, "cursor": page["next"]}
    everything = api.client.get("/v1/bookings", params={"limit": 500}, headers=writer).json()
    assert seen == [r["id"] for r in everything["items"] if r["id"] in flagged]
    assert len(seen) == 4

    def ids(**params: object) -> set[str]:
        return {
            r["id"]
            for r in api.client.get("/v1/bookings", params=params, headers=writer).json()["items"]
        }

    assert ids(problem=["errored", "not_live"], state="live") | ids(
        problem=["errored", "not_live"], state="started"
    ) == ids(problem=["errored", "not_live"])
    assert len(ids(problem=["errored", "not_live"])) == 8
    assert len(ids(state="live")) == 6


@pytest.mark.parametrize(
    ("params", "field"),
    [({"problem": "broken"}, "problem"), ({"problem": ["errored", ""]}, "problem")],
)
def test_an_unknown_problem_is_422_naming_it(api, writer, params, field) -> None:
    answer = api.client.get("/v1/bookings", params=params, headers=writer)
    problem = _problem(answer, 422)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert "one of errored, not_live, stop_failed" in problem["detail"]


# -- /v1/status ------------------------------------------------------------------------------
def test_status_counts_live_ended_and_problems(api, writer, env, settings) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    for state, problem in (("live", "errored"), ("ended", "stop_failed"), ("started", "not_live")):
        follow(url, uuid.UUID(api.book(writer)["id"]), state, problem=problem)
    follow(url, uuid.UUID(api.book(writer)["id"]), "live")
    ops = api.auth("ops")
    unhealthy = api.client.get("/v1/status", headers=ops)
    assert unhealthy.status_code == 503  # never ticked, as before
    tick(get_sessionmaker(url), settings, lambda c: None)
    answer = api.client.get("/v1/status", headers=ops)
    assert answer.status_code == 200, answer.text  # flags are no ill health of the pipeline
    data = answer.json()
    assert data["counts"]["live"] == 2 and data["counts"]["ended"] == 1
    assert data["problem_counts"] == {"not_live": 1, "errored": 1, "stop_failed": 1}
