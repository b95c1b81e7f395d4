"""The /v1/bookings endpoints through FastAPI's TestClient, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.acceptance.test_cli import _store_started
from tests.dbdump import dump
from tests.http_api import AT, MEETING, Api

PROBLEM = "application/problem+json"


@pytest.fixture
def api(settings) -> Api:
    return Api(settings)


@pytest.fixture
def writer(api) -> dict[str, str]:
    return api.auth("bookings:write", "bookings:read")


def test_book_show_cancel(api, writer) -> None:
    booked = api.book(writer, name="town-hall", width=1280, height=720, ref="e1", tz="Asia/Tokyo")
    assert booked["created"] is True and booked["state"] == "scheduled"
    assert booked["scheduled_at"] == "2031-01-01T10:00:00Z"
    assert booked["video_width"] == 1280 and booked["timezone"] == "Asia/Tokyo"

    shown = api.client.get(f"/v1/bookings/{booked['id']}", headers=writer)
    assert shown.status_code == 200
    data = shown.json()
    assert data["why"].startswith("waiting") and data["attempt_log"] == []
    assert data["external_ref"] == "e1"

    cancelled = api.client.post(f"/v1/bookings/{booked['id']}/cancel", headers=writer)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = api.client.post(f"/v1/bookings/{booked['id']}/cancel", headers=writer)
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM
    assert again.json()["errors"][0]["field"] == "state"


def test_a_wall_time_in_a_zone_is_booked_like_the_cli_does(api, writer) -> None:
    booked = api.book(writer, at="2031-01-01 19:00", tz="Asia/Tokyo")
    assert booked["scheduled_at"] == "2031-01-01T10:00:00Z"


def test_booking_the_same_ref_again_is_idempotent_and_a_different_one_conflicts(
    api, writer, env
) -> None:
    first = api.book(writer, ref="evt-1", name="a")
    body = {"meeting_id": MEETING, "at": AT, "ref": "evt-1", "name": "a"}
    again = api.client.post("/v1/bookings", json=body, headers=writer)
    assert again.status_code == 200
    assert again.json()["id"] == first["id"] and again.json()["created"] is False

    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    other = {**body, "name": "b", "at": "2031-01-01T11:00:00Z"}
    conflict = api.client.post("/v1/bookings", json=other, headers=writer)
    assert conflict.status_code == 409
    problem = conflict.json()
    assert problem["status"] == 409 and problem["title"] == "Conflict"
    assert {e["field"] for e in problem["errors"]} == {"at", "name"}
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"meeting_id": "nope", "at": AT}, "meeting_id"),
        ({"meeting_id": MEETING, "at": "2020-01-01T10:00:00Z"}, "at"),
        ({"meeting_id": MEETING, "at": AT, "width": 0}, "width"),
        ({"meeting_id": MEETING, "at": AT, "width": "1280"}, "width"),
        ({"meeting_id": MEETING, "at": AT, "tz": "Mars/Olympus"}, "tz"),
        ({"meeting_id": MEETING, "at": AT, "ref": " x"}, "ref"),
        ({"meeting_id": MEETING, "at": AT, "start_windw": 60}, "start_windw"),
        ({"at": AT}, "meeting_id"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_stores_nothing(api, writer, env, body, field):
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    answer = api.client.post("/v1/bookings", json=body, headers=writer)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    problem = answer.json()
    assert set(problem) == {"type", "title", "status", "detail", "errors"}
    assert [e["field"] for e in problem["errors"]] == [field]
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before


def test_an_oversized_body_is_413_and_stores_nothing(api, writer, env) -> None:
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    body = {"meeting_id": MEETING, "at": AT, "name": "x" * 20_000}
    answer = api.client.post("/v1/bookings", json=body, headers=writer)
    assert answer.status_code == 413 and answer.headers["content-type"] == PROBLEM

    def chunks():
        yield b'{"meeting_id": "' + MEETING.encode() + b'", "name": "'
        yield b"x" * 20_000
        yield b'"}'

    chunked = api.client.post(
        "/v1/bookings", content=chunks(), headers={**writer, "content-type": "application/json"}
    )
    assert chunked.status_code == 413
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before


def test_reschedule_and_retry(api, writer, settings) -> None:
    booked = api.book(writer)
    moved = api.client.post(
        f"/v1/bookings/{booked['id']}/reschedule",
        json={"at": "2031-01-02 09:00", "tz": "Europe/Berlin"},
        headers=writer,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["scheduled_at"] == "2031-01-02T08:00:00Z"
    refused = api.client.post(f"/v1/bookings/{booked['id']}/retry", headers=writer)
    assert refused.status_code == 409
    assert "only failed or missed" in refused.json()["detail"]
    unknown = api.client.post(
        f"/v1/bookings/{booked['id']}/retry", json={"when": "now"}, headers=writer
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "when"


def test_unknown_and_malformed_ids(api, writer) -> None:
    missing = api.client.get(f"/v1/bookings/{uuid.uuid4()}", headers=writer)
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "id"
    bad = api.client.get("/v1/bookings/not-a-uuid", headers=writer)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "id"


def test_list_filters(api, writer) -> None:
    other = str(uuid.uuid4())
    a = api.book(writer, ref="a")
    b = api.book(writer, meeting_id=other, at="2031-01-02T10:00:00Z")
    api.client.post(f"/v1/bookings/{b['id']}/cancel", headers=writer)

    def ids(**params) -> list[str]:
        answer = api.client.get("/v1/bookings", params=params, headers=writer)
        assert answer.status_code == 200, answer.text
        return [r["id"] for r in answer.json()["items"]]

    assert ids() == [a["id"], b["id"]]
    assert ids(state=["cancelled"]) == [b["id"]]
    assert ids(state=["cancelled", "scheduled"]) == [a["id"], b["id"]]
    assert ids(meeting_id=other) == [b["id"]]
    assert ids(ref="a") == [a["id"]]
    assert ids(**{"from": "2031-01-02T00:00:00Z"}) == [b["id"]]
    assert ids(to="2031-01-02T00:00:00Z") == [a["id"]]
    bad = api.client.get("/v1/bookings", params={"state": "sleeping"}, headers=writer)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "state"
    # A NUL in the ref is the caller's input (422), not "the database is unavailable" (503).
    invalid = (({"limit": 501}, "limit"), ({"cursor": "%%%"}, "cursor"), ({"ref": "a\0b"}, "ref"))
    for params, field in invalid:
        answer = api.client.get("/v1/bookings", params=params, headers=writer)
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == field


def test_pages_stay_stable_while_bookings_are_inserted(api, writer) -> None:
    base = datetime(2031, 1, 1, 10, 0, tzinfo=UTC)
    at = [(base + timedelta(minutes=i)).isoformat() for i in range(7)]
    # two bookings share an instant, so the id breaks the tie
    original = [api.book(writer, at=t)["id"] for t in (at[0], at[2], at[2], at[4], at[6])]

    seen: list[str] = []
    params: dict[str, object] = {"limit": 2}
    pages = 0
    while True:
        answer = api.client.get("/v1/bookings", params=params, headers=writer).json()
        seen += [r["id"] for r in answer["items"]]
        pages += 1
        # insert before and after the page just read: neither may shift what comes next
        api.book(writer, at=at[1] if pages == 1 else at[0])
        api.book(writer, at=at[5])
        if answer["next"] is None:
            break
        params = {"limit": 2, "cursor": answer["next"]}
    assert len(seen) == len(set(seen))
    everything = api.client.get("/v1/bookings", params={"limit": 500}, headers=writer).json()
    in_order = [r["id"] for r in everything["items"] if r["id"] in original]
    assert [i for i in seen if i in original] == in_order  # none skipped, none repeated
    assert len(in_order) == len(original)


def test_stream_key_reveal_needs_its_scope_and_is_logged_without_the_key(
    api, writer, env, caplog
) -> None:
    booked = api.book(writer)
    secret = "sk_live_0123456789abcdefSECRET"
    _store_started(env, booked["id"], secret)
    shown = api.client.get(f"/v1/bookings/{booked['id']}", headers=writer)
    assert secret not in shown.text and shown.json()["stream_key"].endswith("CRET")
    listed = api.client.get("/v1/bookings", headers=writer)
    assert secret not in listed.text

    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    refused = api.client.get(f"/v1/bookings/{booked['id']}/stream-key", headers=writer)
    assert refused.status_code == 403 and secret not in refused.text
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before

    reader = api.auth("stream-keys:read")
    with caplog.at_level(logging.INFO, logger="worker.http"):
        revealed = api.client.get(f"/v1/bookings/{booked['id']}/stream-key", headers=reader)
    assert revealed.status_code == 200 and revealed.json()["stream_key"] == secret
    reveals = [r for r in caplog.records if getattr(r, "action", None) == "stream_key_reveal"]
    assert len(reveals) == 1
    assert reveals[0].booking_id == booked["id"] and reveals[0].api_key == "key2"
    for record in caplog.records:
        key = reader["Authorization"].split()[1]
        assert secret not in record.getMessage() and key not in record.getMessage()
        assert secret not in str(record.__dict__)


def test_a_booking_without_a_stream_key_has_none_to_reveal(api, writer) -> None:
    booked = api.book(writer)
    answer = api.client.get(
        f"/v1/bookings/{booked['id']}/stream-key", headers=api.auth("stream-keys:read")
    )
    assert answer.status_code == 404 and answer.json()["errors"][0]["field"] == "stream_key"
