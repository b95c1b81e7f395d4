"""Recurring series through the CLI and the HTTP API: occurrences booked across clock changes,
one occurrence changed on its own (detached), the series edited and cancelled, its webhooks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from models import ScheduledStream, WebhookEvent
from models.db import get_sessionmaker
from tests.acceptance.test_cli import MEETING, run
from tests.dbdump import dump
from tests.http_api import Api
from tests.webhook_rows import register
from worker.series import flow
from worker.settings import Settings

PROBLEM = "application/problem+json"
WEEKLY = ["--rule", "FREQ=WEEKLY;BYDAY=MO", "--at", "19:00", "--tz", "Europe/Berlin"]


@pytest.fixture
def long_horizon(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A horizon over the whole of 2027, so that both of its clock changes are booked."""
    monkeypatch.setenv("LIVESTREAMS_SERIES_HORIZON", "400")
    return Settings.from_env({**env, "LIVESTREAMS_SERIES_HORIZON": "400"})


def rows(url: str, ref_prefix: str = "th:") -> dict[str, ScheduledStream]:
    with get_sessionmaker(url)() as s:
        found = s.scalars(
            select(ScheduledStream).where(ScheduledStream.external_ref.startswith(ref_prefix))
        )
        return {r.external_ref.split(":", 1)[1]: r for r in found}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_cli_books_every_monday_at_19_berlin_across_both_clock_changes(long_horizon) -> None:
    code, out, err = run(
        "series", "add", "--ref", "th", "--meeting-id", MEETING, *WEEKLY,
        "--first", "2027-03-15", "--duration", "1h", "--name", "town-hall", "--json",
    )  # fmt: skip
    assert code == 0, err
    added = json.loads(out)
    assert added["created"] is True and added["warnings"] == []
    booked = rows(long_horizon.database_url)
    assert booked["2027-03-22"].scheduled_at == utc(2027, 3, 22, 18)
    assert booked["2027-03-29"].scheduled_at == utc(2027, 3, 29, 17)
    assert booked["2027-10-25"].scheduled_at == utc(2027, 10, 25, 17)
    assert booked["2027-11-01"].scheduled_at == utc(2027, 11, 1, 18)
    first = booked["2027-03-15"]
    assert (first.ends_at - first.scheduled_at).total_seconds() == 3600
    assert first.name == "town-hall" and first.timezone == "Europe/Berlin"
    assert {r.state for r in booked.values()} == {"scheduled"}
    assert len(booked) == added["made"]

    # Adding it again is harmless; other fields under the same ref are refused.
    again = ("series", "add", "--ref", "th", "--meeting-id", MEETING, *WEEKLY,
             "--first", "2027-03-15", "--name", "town-hall", "--duration")  # fmt: skip
    code, out, _ = run(*again, "1h")
    assert code == 0 and "already added" in out
    before = dump(long_horizon.database_url)
    code, _, err = run(*again, "2h")
    assert code == 2 and "with other duration" in err
    assert dump(long_horizon.database_url) == before

    code, out, _ = run("series", "show", "--ref", "th")
    assert code == 0
    assert "2027-03-29  scheduled   2027-03-29T17:00:00.000Z  2027-03-29 19:00 CEST" in out
    assert "does not exist on a date (clocks go forward) starts later by the jump" in out
    code, out, _ = run("series", "list")
    assert out.splitlines()[0].startswith("REF") and "FREQ=WEEKLY;BYDAY=MO" in out


def test_show_names_the_dates_a_clock_change_moves(long_horizon) -> None:
    code, _, err = run("series", "add", "--ref", "night", "--meeting-id", MEETING,
                       "--rule", "FREQ=WEEKLY;BYDAY=SU", "--at", "02:30", "--tz", "Europe/Berlin",
                       "--first", "2027-03-21", "--duration", "30m")  # fmt: skip
    assert code == 0, err
    code, out, _ = run("series", "show", "--ref", "night", "--json")
    shown = json.loads(out)
    assert shown["clock_changes"] == [
        {"date": "2027-03-28", "scheduled_at": "2027-03-28T01:30:00.000Z",
         "scheduled_at_local": "2027-03-28 03:30 CEST", "timing": "shifted"},
        {"date": "2027-10-31", "scheduled_at": "2027-10-31T00:30:00.000Z",
         "scheduled_at_local": "2027-10-31 02:30 CEST", "timing": "first_of_two"},
    ]  # fmt: skip
    booked = rows(long_horizon.database_url, "night:")
    assert booked["2027-03-28"].scheduled_at == utc(2027, 3, 28, 1, 30)


def test_cli_detach_edit_and_cancel(long_horizon) -> None:
    url = long_horizon.database_url
    assert run("series", "add", "--ref", "th", "--meeting-id", MEETING, *WEEKLY,
               "--first", "2027-03-15", "--duration", "1h")[0] == 0  # fmt: skip
    # One occurrence moved on its own, another cancelled on its own: both leave the rule.
    code, _, err = run("reschedule", "--ref", "th:2027-03-22", "--at", "2027-03-22 20:30")
    assert code == 0, err
    assert run("cancel", "--ref", "th:2027-04-05")[0] == 0

    code, out, err = run("series", "edit", "--ref", "th", "--at", "18:00", "--json")
    assert code == 0, err
    edited = json.loads(out)
    booked = rows(url)
    assert edited["moved"] == len(booked) - 2 and edited["cancelled"] == 0
    assert booked["2027-03-15"].scheduled_at == utc(2027, 3, 15, 17)  # 18:00 CET
    assert booked["2027-03-29"].scheduled_at == utc(2027, 3, 29, 16)  # 18:00 CEST
    assert booked["2027-03-22"].scheduled_at == utc(2027, 3, 22, 19, 30)  # as moved by hand
    assert booked["2027-03-22"].detached and booked["2027-04-05"].detached
    assert booked["2027-04-05"].state == "cancelled"
    code, out, _ = run("series", "show", "--ref", "th")
    assert "th:2027-03-22  (detached)" in out

    # A new rule: Mondays and Thursdays. Thursdays are booked, Mondays stay.
    code, out, _ = run("series", "edit", "--ref", "th", "--rule", "FREQ=WEEKLY;BYDAY=MO,TH",
                       "--json")  # fmt: skip
    assert code == 0
    assert rows(url)["2027-03-18"].scheduled_at == utc(2027, 3, 18, 17)
    # Thursdays only: the untouched Mondays leave with their date; the detached one stays.
    mondays = [d for d, r in rows(url).items() if r.state == "scheduled" and not r.detached
               and datetime.fromisoformat(d).weekday() == 0]  # fmt: skip
    code, out, _ = run("series", "edit", "--ref", "th", "--rule", "FREQ=WEEKLY;BYDAY=TH",
                       "--json")  # fmt: skip
    assert json.loads(out)["cancelled"] == len(mondays) > 30
    booked = rows(url)
    assert booked["2027-03-15"].state == "cancelled"
    assert booked["2027-03-15"].last_error == "its date left the series' rule"
    assert booked["2027-03-22"].state == "scheduled"

    code, out, _ = run("series", "cancel", "--ref", "th", "--json")
    assert code == 0
    booked = rows(url)
    assert booked["2027-03-18"].state == "cancelled"
    assert booked["2027-03-18"].last_error == "cancelled with its series"
    assert booked["2027-03-22"].state == "scheduled"  # changed on its own: left alone
    assert json.loads(out)["state"] == "cancelled"
    code, _, err = run("series", "edit", "--ref", "th", "--at", "17:00")
    assert code == 2 and "cannot edit a series that is cancelled" in err
    assert run("series", "cancel", "--ref", "th")[0] == 2


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--rule", "FREQ=YEARLY"], "rule: FREQ must be DAILY, WEEKLY or MONTHLY"),
        (["--at", "7pm"], "at: must be a wall time HH:MM"),
        (["--tz", "Mars/Olympus"], "tz: unknown IANA time zone"),
        (["--duration", "-5"], "duration: must be positive"),
        (["--first", "2027-02-30"], "first: must be a date YYYY-MM-DD"),
        (["--except", "someday"], "exdates: must be dates YYYY-MM-DD"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_nothing_stored(env, args, says) -> None:
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    base = {"--rule": "FREQ=DAILY", "--at": "19:00", "--tz": "UTC", "--duration": "1h"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [x for pair in base.items() for x in pair]
    code, out, err = run("series", "add", "--ref", "s", "--meeting-id", MEETING, *flat)
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith(f"livestreams: error: {says}")
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before


@pytest.fixture
def api(long_horizon) -> Api:
    return Api(long_horizon)


def test_http_add_detach_edit_cancel(api, long_horizon) -> None:
    writer = api.auth("bookings:write", "bookings:read")
    reader = api.auth("bookings:read")
    body = {"ref": "th", "meeting_id": MEETING, "rule": "FREQ=WEEKLY;BYDAY=MO", "at": "19:00",
            "tz": "Europe/Berlin", "duration": "1h", "first": "2027-03-15"}  # fmt: skip
    assert api.client.post("/v1/series", json=body, headers=reader).status_code == 403
    created = api.client.post("/v1/series", json=body, headers=writer)
    assert created.status_code == 201, created.text
    series = created.json()
    assert created.headers["location"] == f"/v1/series/{series['id']}"
    assert series["warnings"] == [] and series["made"] > 30
    assert api.client.post("/v1/series", json=body, headers=writer).status_code == 200

    shown = api.client.get(f"/v1/series/{series['id']}", headers=reader).json()
    by_date = {o["date"]: o for o in shown["occurrences"]}
    assert by_date["2027-03-29"]["scheduled_at"] == "2027-03-29T17:00:00.000Z"
    assert by_date["2027-03-22"]["scheduled_at"] == "2027-03-22T18:00:00.000Z"

    moved = api.client.post(
        f"/v1/bookings/{by_date['2027-03-22']['id']}/reschedule",
        json={"at": "2027-03-22 21:00"}, headers=writer,
    )  # fmt: skip
    assert moved.status_code == 200
    edited = api.client.post(
        f"/v1/series/{series['id']}/edit", json={"at": "20:00", "duration": "2h"}, headers=writer
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["moved"] == series["made"] - 1
    shown = api.client.get(f"/v1/series/{series['id']}", headers=reader).json()
    by_date = {o["date"]: o for o in shown["occurrences"]}
    assert by_date["2027-03-29"]["scheduled_at"] == "2027-03-29T18:00:00.000Z"
    assert by_date["2027-03-22"]["scheduled_at"] == "2027-03-22T20:00:00.000Z"
    assert by_date["2027-03-22"]["detached"] is True
    occurrence = rows(long_horizon.database_url)["2027-03-29"]
    assert (occurrence.ends_at - occurrence.scheduled_at).total_seconds() == 7200

    cancelled = api.client.post(f"/v1/series/{series['id']}/cancel", headers=writer)
    assert cancelled.status_code == 200
    assert cancelled.json()["cancelled"] == series["made"] - 1
    states = {o["date"]: o["state"] for o in api.client.get(
        f"/v1/series/{series['id']}", headers=reader).json()["occurrences"]}  # fmt: skip
    assert states["2027-03-22"] == "scheduled"
    assert set(states.values()) == {"scheduled", "cancelled"}
    again = api.client.post(f"/v1/series/{series['id']}/cancel", headers=writer)
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM

    listed = api.client.get("/v1/series", headers=reader).json()
    assert [s["ref"] for s in listed["items"]] == ["th"]


def test_http_bad_input_names_the_field_and_stores_nothing(api, env) -> None:
    writer, reader = api.auth("bookings:write"), api.auth("bookings:read")
    url = env["LIVESTREAMS_DATABASE_URL"]
    before = {k: v for k, v in dump(url).items() if k != "api_keys"}
    body = {"ref": "th", "meeting_id": MEETING, "rule": "FREQ=WEEKLY;BYHOUR=9", "at": "19:00",
            "tz": "Europe/Berlin", "duration": "1h"}  # fmt: skip
    answer = api.client.post("/v1/series", json=body, headers=writer)
    assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM
    assert answer.json()["errors"] == [
        {"field": "rule", "message": "BYHOUR is not supported (only FREQ, INTERVAL, BYDAY, "
         "BYMONTHDAY, COUNT, UNTIL)"}
    ]  # fmt: skip
    assert api.client.get("/v1/series/nope", headers=reader).status_code == 422
    no_length = api.client.post("/v1/series", json={**body, "duration": None}, headers=writer)
    assert no_length.status_code == 422
    assert no_length.json()["errors"][0]["field"] == "duration"
    assert {k: v for k, v in dump(url).items() if k != "api_keys"} == before


def test_series_changes_are_webhook_events(long_horizon) -> None:
    url = long_horizon.database_url
    register(long_horizon, types=("series.created", "series.updated", "series.cancelled",
                                  "booking.cancelled"))  # fmt: skip
    factory = get_sessionmaker(url)
    with factory.begin() as s:
        made = flow.add(
            s,
            long_horizon,
            ref="th",
            meeting_id=MEETING,
            rule="FREQ=DAILY;COUNT=3",
            at="19:00",
            tz="Europe/Berlin",
            duration="1h",
            first="2027-03-27",
        )
        series_id = made.series.id
    with factory.begin() as s:
        flow.edit(s, long_horizon, flow.find(s, series_id), at="18:30")
    with factory.begin() as s:
        flow.cancel(s, flow.find(s, series_id))
    with factory() as s:
        events = s.execute(
            select(WebhookEvent.type, WebhookEvent.series_id, WebhookEvent.payload).order_by(
                WebhookEvent.created_at
            )
        ).all()
    series_events = [(t, json.loads(p)["data"]) for t, sid, p in events if sid == series_id]
    assert [t for t, _ in series_events] == ["series.created", "series.updated", "series.cancelled"]
    assert series_events[1][1]["wall_time"] == "18:30" and series_events[1][1]["ref"] == "th"
    assert series_events[2][1]["state"] == "cancelled"
    assert [t for t, sid, _ in events if sid is None] == ["booking.cancelled"] * 3


def test_making_occurrences_twice_is_harmless_and_beat_keeps_the_horizon(env) -> None:
    url = env["LIVESTREAMS_DATABASE_URL"]
    short = Settings.from_env({**env, "LIVESTREAMS_SERIES_HORIZON": "7"})
    factory = get_sessionmaker(url)
    with factory.begin() as s:
        made = flow.add(s, short, ref="d", meeting_id=MEETING, rule="FREQ=DAILY", at="12:00",
                        tz="UTC", duration="1h")  # fmt: skip
    assert 6 <= len(made.made) <= 7
    assert flow.make_all(factory, short) == 0  # made up to the horizon already
    with factory.begin() as s:
        again = flow.make(s, short, flow.find(s, ref="d"), made.series.created_at)
    assert again == []
    longer = Settings.from_env({**env, "LIVESTREAMS_SERIES_HORIZON": "14"})
    assert flow.make_all(factory, longer) == 7
    assert flow.make_all(factory, longer) == 0
    refs = sorted(rows(url, "d:"))
    assert len(refs) == len(set(refs)) == len(made.made) + 7
