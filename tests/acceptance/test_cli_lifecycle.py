"""The CLI over a livestream's whole life: its end when booking, stop, the timeline in `show`,
the live/ended states and problem flags in `list` and `status`."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from models import ScheduledStream
from models.db import get_sessionmaker
from tests.dbdump import dump
from tests.lifecycle_rows import follow
from worker.cli import cli

MEETING = "0f8fad5b-d9cb-469f-a165-70867728950e"
AT = "2031-01-01T10:00:00Z"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def schedule(*extra: str) -> dict:
    code, out, err = run("schedule", "--meeting-id", MEETING, "--at", AT, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _ends_at(env, stream_id: str) -> object:
    with get_sessionmaker(env["LIVESTREAMS_DATABASE_URL"])() as s:
        query = select(ScheduledStream.ends_at).where(ScheduledStream.id == uuid.UUID(stream_id))
        return s.scalar(query)


# -- the end, when booking and rescheduling --------------------------------------------------
@pytest.mark.parametrize(
    "end",
    [
        ["--duration", "1h30m"],
        ["--duration", "5400"],
        ["--ends-at", "2031-01-01T11:30:00Z"],
        ["--ends-at", "2031-01-01 20:30", "--tz", "Asia/Tokyo"],
    ],
)
def test_schedule_with_an_end_stores_and_shows_it(env, end) -> None:
    booked = schedule(*end)
    assert booked["ends_at"] == "2031-01-01T11:30:00Z" and booked["duration_seconds"] == 5400
    assert _ends_at(env, booked["id"]).isoformat() == "2031-01-01T11:30:00+00:00"
    code, out, _ = run("show", booked["id"])
    assert code == 0
    assert "ends          2031-01-01T11:30:00Z" in out and "1h30m after the start" in out


@pytest.mark.parametrize(
    ("args", "field", "fragment"),
    [
        (["--ends-at", "2031-01-01T10:00:00Z"], "ends_at", "is not after the start"),
        (["--ends-at", "2031-01-02T10:00:01Z"], "ends_at", "at most 1d (LIVESTREAMS_MAX_DURATION)"),
        (["--duration", "25h"], "duration", "would last 1d1h; at most 1d"),
        (["--duration", "0"], "duration", "must be positive"),
        (["--duration", "1.5h"], "duration", "is not a duration"),
        (["--ends-at", "2031-01-01T11:00:00Z", "--duration", "1h"], "ends_at", "not both"),
        (["--ends-at", "2031-01-01 11:00"], "ends_at", "has no UTC offset"),
        (
            ["--at", "2031-03-30T00:00Z", "--tz", "Europe/Berlin", "--ends-at", "2031-03-30 02:30"],
            "ends_at",
            "does not exist in Europe/Berlin",
        ),
        (
            ["--at", "2031-10-26T00:00Z", "--tz", "Europe/Berlin", "--ends-at", "2031-10-26 02:30"],
            "ends_at",
            "happens twice in Europe/Berlin",
        ),
        (["--ref", "e1", "--duration", "2h"], "external_ref", "with other duration"),
        (["--ref", "e1"], "external_ref", "with other ends_at"),
    ],
)  # fmt: skip
def test_a_bad_end_exits_2_in_one_line_and_stores_nothing(env, args, field, fragment) -> None:
    schedule("--ref", "e1", "--duration", "1h")
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    code, out, err = run("schedule", "--meeting-id", MEETING, "--at", AT, *args)
    assert (code, out) == (2, "")
    assert err.startswith(f"livestreams: error: {field}:") and fragment in err, err
    assert len(err.strip().splitlines()) == 1
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before


def test_max_duration_comes_from_the_environment(env, monkeypatch) -> None:
    monkeypatch.setenv("LIVESTREAMS_MAX_DURATION", "7200")
    code, _, err = run("schedule", "--meeting-id", MEETING, "--at", AT, "--duration", "3h")
    assert code == 2 and "at most 2h (LIVESTREAMS_MAX_DURATION)" in err
    assert schedule("--duration", "2h")["ends_at"] == "2031-01-01T12:00:00Z"


def test_reschedule_moves_the_end_with_the_start_or_takes_a_new_one(env) -> None:
    booked = schedule("--duration", "1h30m", "--tz", "Asia/Tokyo")

    def moved(*args: str) -> str:
        code, out, err = run("reschedule", booked["id"], "--at", "2031-01-02T10:00:00Z", *args)
        assert code == 0, err
        return json.loads(out)["ends_at"]

    assert moved("--json") == "2031-01-02T11:30:00Z"
    assert moved("--duration", "45m", "--json") == "2031-01-02T10:45:00Z"
    # A wall time is read in the booking's zone (Tokyo), like --at.
    assert moved("--ends-at", "2031-01-02 21:00", "--json") == "2031-01-02T12:00:00Z"
    assert moved("--json") == "2031-01-02T12:00:00Z"  # the new length is the one kept
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    code, _, err = run("reschedule", booked["id"], "--at", AT, "--duration", "2d")
    assert code == 2 and err.startswith("livestreams: error: duration:")
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before


# -- stop ------------------------------------------------------------------------------------
def test_stop_records_the_request_once(env) -> None:
    booked = schedule("--ref", "evt-stop")
    url = env["LIVESTREAMS_DATABASE_URL"]
    code, out, err = run("stop", booked["id"])
    assert (code, out) == (2, "")
    assert err == (
        "livestreams: error: state: booking is scheduled: nothing to stop yet (cancel it instead)\n"
    )

    follow(url, uuid.UUID(booked["id"]), "live", seen=[("LIVE", "poll", 5)])
    code, out, err = run("stop", "--ref", "evt-stop", "--json")
    assert code == 0, err
    stopped = json.loads(out)
    assert stopped["state"] == "live" and stopped["stop_requested_at"] is not None
    assert stopped["due_at"] == stopped["stop_requested_at"]  # the next tick picks it up

    before = dump(url)
    code, out, err = run("stop", booked["id"])
    assert (code, out) == (2, "")
    assert err == (
        "livestreams: error: stop_requested_at: a stop was already requested at "
        f"{stopped['stop_requested_at']}\n"
    )
    assert dump(url) == before
    code, out, _ = run("show", booked["id"])
    assert f"stop request  {stopped['stop_requested_at'][:19]}Z" in out
    assert f"a stop was requested at {stopped['stop_requested_at']}" in out  # the why


def test_stop_text_and_unknown_booking(env) -> None:
    booked = schedule()
    follow(env["LIVESTREAMS_DATABASE_URL"], uuid.UUID(booked["id"]), "started")
    code, out, _ = run("stop", booked["id"])
    assert code == 0 and out.startswith(f"stop of {booked['id']} requested at ")
    code, _, err = run("stop", str(uuid.uuid4()))
    assert code == 2 and "no booking with id" in err


def test_stop_of_an_ended_booking_says_how_it_ended(env) -> None:
    booked = schedule()
    follow(
        env["LIVESTREAMS_DATABASE_URL"], uuid.UUID(booked["id"]), "ended",
        ended_at=_instant("2031-01-01T11:00:00Z"), end_reason="scheduled_stop",
    )  # fmt: skip
    code, _, err = run("stop", booked["id"], "--json")
    assert code == 2
    assert "already ended (scheduled_stop at 2031-01-01T11:00:00Z)" in err


# -- show: the whole life --------------------------------------------------------------------
TIMELINE = [("INVOKED", "start", 2), ("LIVE", "webhook", 9.5), ("OFFLINE", "poll", 3600)]


def test_show_prints_the_whole_life_and_the_timeline(env) -> None:
    booked = schedule("--tz", "Asia/Tokyo", "--duration", "1h")
    follow(
        env["LIVESTREAMS_DATABASE_URL"], uuid.UUID(booked["id"]), "ended", seen=TIMELINE,
        live_at=_instant("2031-01-01T10:00:09.500000Z"),
        ended_at=_instant("2031-01-01T11:00:01Z"), end_reason="scheduled_stop",
        problem="errored",
    )  # fmt: skip
    code, out, _ = run("show", booked["id"], "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["state"] == "ended"
    assert shown["ends_at"] == "2031-01-01T11:00:00Z"
    assert shown["live_at"] == "2031-01-01T10:00:09.500000Z"
    assert shown["ended_at"] == "2031-01-01T11:00:01Z"
    assert shown["end_reason"] == "scheduled_stop" and shown["problem"] == "errored"
    assert shown["stop_requested_at"] is None
    assert shown["livestream_status"] == "OFFLINE"
    assert shown["status_observed_at"] == "2031-01-01T11:00:00Z"
    assert shown["why"] == (
        "ended at 2031-01-01T11:00:01Z: stopped at its ends_at; "
        "problem errored: the provider reported ERRORED"
    )
    assert shown["timeline"] == [
        {
            "observed_at": "2031-01-01T10:00:02Z",
            "observed_at_local": "2031-01-01T10:00:02Z (2031-01-01 19:00:02 JST, Asia/Tokyo)",
            "status": "INVOKED",
            "source": "start",
        },
        {
            "observed_at": "2031-01-01T10:00:09.500000Z",
            "observed_at_local": "2031-01-01T10:00:09Z (2031-01-01 19:00:09 JST, Asia/Tokyo)",
            "status": "LIVE",
            "source": "webhook",
        },
        {
            "observed_at": "2031-01-01T11:00:00Z",
            "observed_at_local": "2031-01-01T11:00:00Z (2031-01-01 20:00:00 JST, Asia/Tokyo)",
            "status": "OFFLINE",
            "source": "poll",
        },
    ]
    code, out, _ = run("show", booked["id"])
    assert code == 0
    lines = out.splitlines()
    assert "timeline:" in lines
    assert lines[lines.index("timeline:") + 1 :] == [
        "  2031-01-01T10:00:02Z (2031-01-01 19:00:02 JST, Asia/Tokyo)  INVOKED   start",
        "  2031-01-01T10:00:09Z (2031-01-01 19:00:09 JST, Asia/Tokyo)  LIVE      webhook",
        "  2031-01-01T11:00:00Z (2031-01-01 20:00:00 JST, Asia/Tokyo)  OFFLINE   poll",
    ]
    assert "live          2031-01-01T10:00:09Z (2031-01-01 19:00:09 JST, Asia/Tokyo)" in lines
    assert (
        "ended         2031-01-01T11:00:01Z (2031-01-01 20:00:01 JST, Asia/Tokyo): scheduled_stop"
        in lines
    )
    assert "problem       errored" in lines
    assert "status        OFFLINE (observed 2031-01-01T11:00:00Z)" in lines


def test_show_without_a_timeline_prints_no_section(env) -> None:
    booked = schedule()
    code, out, _ = run("show", booked["id"])
    assert code == 0 and "timeline" not in out
    assert json.loads(run("show", booked["id"], "--json")[1])["timeline"] == []


@pytest.mark.parametrize(
    ("state", "values", "why"),
    [
        ("started", {}, "; runs until it ends upstream"),
        ("started", {"ends_at": "2031-01-01T11:00:00Z"}, "; to be stopped at 2031-01-01T11:00:00Z"),
        ("started", {"problem": "not_live"}, "; runs until it ends upstream; problem not_live: "
         "not seen LIVE within the live deadline"),
        ("live", {"live_at": "2031-01-01T10:00:05Z"}, "live since 2031-01-01T10:00:05Z; runs "
         "until it ends upstream"),
        ("live", {"problem": "stop_failed", "last_error": "stop: HTTP 403"}, "problem stop_failed: "
         "the stop was refused: stop: HTTP 403"),
        ("ended", {"ended_at": "2031-01-01T10:30:00Z", "end_reason": "ended_upstream"},
         "ended at 2031-01-01T10:30:00Z: no longer the meeting's active livestream upstream"),
        ("ended", {"ended_at": "2031-01-01T10:30:00Z", "end_reason": "ops_stop"},
         "ended at 2031-01-01T10:30:00Z: stopped on request"),
    ],
)  # fmt: skip
def test_why_tells_a_followed_livestream_apart(env, state, values, why) -> None:
    booked = schedule()
    values = {k: _instant(v) if k.endswith("_at") else v for k, v in values.items()}
    follow(env["LIVESTREAMS_DATABASE_URL"], uuid.UUID(booked["id"]), state, **values)
    shown = json.loads(run("show", booked["id"], "--json")[1])
    assert why in shown["why"], shown["why"]


def test_the_stream_key_stays_masked_beside_the_timeline(env) -> None:
    from tests.acceptance.test_cli import _store_started

    booked = schedule()
    secret = "sk_live_0123456789abcdefSECRET"
    _store_started(env, booked["id"], secret)
    follow(env["LIVESTREAMS_DATABASE_URL"], uuid.UUID(booked["id"]), "live", seen=TIMELINE[:2])
    for args in (["show", booked["id"]], ["show", booked["id"], "--json"]):
        code, out, _ = run(*args)
        assert code == 0 and secret not in out and "****CRET" in out


# -- list and status -------------------------------------------------------------------------
def _lifecycle(env) -> dict[str, str]:
    """One booking in each followed state and flag, by name."""
    url = env["LIVESTREAMS_DATABASE_URL"]
    rows = {
        "live": ("live", {}),
        "live_errored": ("live", {"problem": "errored"}),
        "started_not_live": ("started", {"problem": "not_live"}),
        "ended": ("ended", {"end_reason": "ops_stop", "ended_at": _instant(AT)}),
        "ended_stop_failed": ("ended", {"problem": "stop_failed", "end_reason": "ended_upstream"}),
    }
    ids = {"scheduled": schedule()["id"]}
    for name, (state, values) in rows.items():
        ids[name] = schedule("--ref", name)["id"]
        follow(url, uuid.UUID(ids[name]), state, **values)
    return ids


def _listed(*args: str) -> list[str]:
    code, out, err = run("list", "--json", *args)
    assert code == 0, err
    return [r["id"] for r in json.loads(out)]


def test_list_by_the_new_states_and_by_problem(env) -> None:
    ids = _lifecycle(env)

    def names(*args: str) -> set[str]:
        found = set(_listed(*args))
        return {name for name, i in ids.items() if i in found}

    assert names("--state", "live") == {"live", "live_errored"}
    assert names("--state", "ended") == {"ended", "ended_stop_failed"}
    assert names("--problem", "not_live") == {"started_not_live"}
    assert names("--problem", "errored", "--problem", "stop_failed") == {
        "live_errored",
        "ended_stop_failed",
    }
    assert names("--state", "live", "--problem", "errored") == {"live_errored"}
    code, out, _ = run("list", "--problem", "not_live")
    assert code == 0 and "problem not_live" in out and ids["started_not_live"] in out


@pytest.mark.parametrize(
    ("args", "field"),
    [(["--problem", "broken"], "problem"), (["--state", "streaming"], "state")],
)
def test_list_refuses_an_unknown_filter_naming_it(env, args, field) -> None:
    code, out, err = run("list", *args)
    assert (code, out) == (2, "")
    assert err.startswith(f"livestreams: error: {field}: unknown {field} ")
    assert "live" in err if field == "state" else "stop_failed" in err


def test_status_counts_live_ended_and_problems_and_keeps_its_exit_code(env) -> None:
    _lifecycle(env)
    code, out, _ = run("status", "--json")
    data = json.loads(out)
    assert code == 1  # never ticked: flags do not change what the exit code means
    assert data["counts"]["live"] == 2 and data["counts"]["ended"] == 2
    assert data["counts"]["started"] == 1 and data["counts"]["scheduled"] == 1
    assert data["problem_counts"] == {"not_live": 1, "errored": 1, "stop_failed": 1}
    code, out, _ = run("status")
    assert code == 1
    assert "live=2  ended=2" in out
    assert "flagged: not_live=1  errored=1  stop_failed=1" in out
