"""The `livestreams` CLI as ops use it: exit codes, output, and refusals that change nothing."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from models import ScheduledStream
from models.db import db_now, get_sessionmaker
from tests.attempt_rows import add_calls
from tests.dbdump import dump
from worker.bookings import transitions
from worker.cli import cli
from worker.crypto import cipher_for, new_key
from worker.settings import Secret, Settings
from worker.start import claims
from worker.upstream.responses import Livestream

MEETING = "0f8fad5b-d9cb-469f-a165-70867728950e"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def schedule(*extra: str) -> dict:
    code, out, err = run(
        "schedule", "--meeting-id", MEETING, "--at", "2031-01-01T10:00:00Z", "--json", *extra
    )
    assert code == 0, err
    return json.loads(out)


def test_schedule_list_show_round_trip(env) -> None:
    booked = schedule("--name", "town-hall", "--width", "1280", "--height", "720", "--ref", "e1")
    assert booked["created"] is True and booked["state"] == "scheduled"

    code, out, _ = run("list", "--json")
    assert code == 0
    assert [r["id"] for r in json.loads(out)] == [booked["id"]]

    code, out, _ = run("show", booked["id"], "--json")
    shown = json.loads(out)
    assert code == 0
    assert shown["name"] == "town-hall" and shown["video_width"] == 1280
    assert shown["why"].startswith("waiting")
    assert shown["attempt_log"] == []

    code, out, _ = run("show", "--ref", "e1")
    assert code == 0
    assert booked["id"] in out and "2031-01-01T10:00:00Z" in out


def test_times_print_in_utc_and_in_the_booking_zone(env) -> None:
    booked = schedule("--tz", "Asia/Tokyo")
    code, out, _ = run("show", booked["id"])
    assert code == 0
    assert "2031-01-01T10:00:00Z (2031-01-01 19:00:00 JST, Asia/Tokyo)" in out


def test_same_ref_twice_exits_zero_without_a_new_row(env) -> None:
    first = schedule("--ref", "same")
    again = schedule("--ref", "same")
    assert again["id"] == first["id"] and again["created"] is False
    code, out, _ = run("list", "--json")
    assert code == 0
    assert len(json.loads(out)) == 1


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--meeting-id", "nope", "--at", "2031-01-01T10:00:00Z"], "meeting_id"),
        (["--meeting-id", MEETING, "--at", "yesterday"], "at"),
        (["--meeting-id", MEETING, "--at", "2020-01-01T10:00:00Z"], "at"),
        (["--meeting-id", MEETING, "--at", "2027-03-28 02:30", "--tz", "Europe/Berlin"], "at"),
        (["--meeting-id", MEETING, "--at", "2027-10-31 02:30", "--tz", "Europe/Berlin"], "at"),
        (["--meeting-id", MEETING, "--at", "2031-01-01 10:00", "--tz", "Moon/Base"], "tz"),
        (["--meeting-id", MEETING, "--at", "2031-01-01T10:00:00Z", "--name", "a b"], "name"),
        (["--meeting-id", MEETING, "--at", "2031-01-01T10:00:00Z", "--width", "-5"], "width"),
        (["--meeting-id", MEETING, "--at", "2031-01-01T10:00:00Z", "--height", "9000"], "height"),
        (["--meeting-id", MEETING, "--at", "2031-01-01T10:00:00Z", "--app-id", "x" * 40], "app_id"),
        (
            [
                "--meeting-id",
                MEETING,
                "--at",
                "2031-01-01T10:00:00Z",
                "--ref",
                "e1",
                "--name",
                "other",
            ],
            "external_ref",
        ),
    ],
)
def test_bad_input_exits_2_names_the_field_and_changes_nothing(env, args, field) -> None:
    schedule("--ref", "e1")
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    code, _, err = run("schedule", *args)
    assert code == 2
    assert err.startswith(f"livestreams: error: {field}:"), err
    assert len(err.strip().splitlines()) == 1
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before


def test_berlin_offset_form_is_accepted(env) -> None:
    code, out, err = run(
        "schedule", "--meeting-id", MEETING, "--at", "2027-10-31T02:30:00+01:00", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["scheduled_at"] == "2027-10-31T01:30:00Z"


def test_a_bad_setting_exits_2_naming_the_variable(env, monkeypatch) -> None:
    monkeypatch.setenv("LIVESTREAMS_LEASE", "soon")
    code, _, err = run("list")
    assert code == 2
    assert "LIVESTREAMS_LEASE" in err


def test_unknown_booking_exits_2(env) -> None:
    code, _, err = run("show", str(uuid.uuid4()))
    assert code == 2 and "no booking with id" in err


def test_cancel_and_retry_exit_codes(env) -> None:
    booked = schedule()
    assert run("cancel", booked["id"])[0] == 0
    code, _, err = run("cancel", booked["id"])
    assert code == 2 and "cannot cancel a booking that is cancelled" in err
    code, _, err = run("retry", booked["id"])
    assert code == 2 and "only failed or missed" in err


def _set_state(env, stream_id: str, state: str) -> None:
    with get_sessionmaker(env["LIVESTREAMS_DATABASE_URL"]).begin() as s:
        s.execute(
            update(ScheduledStream)
            .where(ScheduledStream.id == uuid.UUID(stream_id))
            .values(state=state, last_error="start deadline passed")
        )


def _due_and_deadline(*args: str) -> tuple[str, str]:
    code, out, err = run(*args, "--json")
    assert code == 0, err
    return json.loads(out)["due_at"], json.loads(out)["start_deadline"]


def test_retry_and_reschedule_keep_the_booked_window(env) -> None:
    # The numbers: a 15 min window, retried 10 h later, then moved a day.
    booked = schedule("--start-window", "900")
    assert booked["start_deadline"] == "2031-01-01T10:15:00Z"
    _set_state(env, booked["id"], "failed")
    retried = _due_and_deadline("retry", booked["id"], "--at", "2031-01-01T20:00:00Z")
    assert retried == ("2031-01-01T20:00:00Z", "2031-01-01T20:15:00Z")
    moved = _due_and_deadline("reschedule", booked["id"], "--at", "2031-01-02T10:00:00Z")
    assert moved == ("2031-01-02T10:00:00Z", "2031-01-02T10:15:00Z")
    code, out, _ = run("show", booked["id"], "--json")
    assert code == 0 and json.loads(out)["start_window"] == 900.0
    # A new window, when given, is the one kept from then on.
    _set_state(env, booked["id"], "missed")
    code, out, err = run(
        "retry", booked["id"], "--at", "2031-01-02T12:00:00Z", "--start-window", "60", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["start_deadline"] == "2031-01-02T12:01:00Z"
    code, out, _ = run("reschedule", booked["id"], "--at", "2031-01-03T12:00:00Z", "--json")
    assert json.loads(out)["start_deadline"] == "2031-01-03T12:01:00Z"
    assert "start window  60 s" in run("show", booked["id"])[1]


def test_booking_the_same_ref_again_after_an_ops_retry_is_the_same_booking(env) -> None:
    booked = schedule("--ref", "evt-7", "--start-window", "900")
    _set_state(env, booked["id"], "failed")
    assert run("retry", booked["id"], "--at", "2031-01-01T20:00:00Z")[0] == 0
    again = schedule("--ref", "evt-7", "--start-window", "900")
    assert again["id"] == booked["id"] and again["created"] is False
    code, _, err = run(
        "schedule", "--meeting-id", MEETING, "--at", "2031-01-01T10:00:00Z", "--ref", "evt-7",
        "--start-window", "600",
    )  # fmt: skip
    assert code == 2 and "other start_window" in err


def test_cancel_and_reschedule_wait_for_an_unclear_start_call(env) -> None:
    # A 502 that may have created a livestream: cancelling now would lose track of it.
    url = env["LIVESTREAMS_DATABASE_URL"]
    booked = schedule()
    add_calls(url, uuid.UUID(booked["id"]), ("start", "ambiguous", 502))
    due = json.loads(run("show", booked["id"], "--json")[1])["due_at"].replace("Z", "+00:00")
    before = dump(url)
    for verb, extra in (("cancel", []), ("reschedule", ["--at", "2031-01-02T10:00:00Z"])):
        code, out, err = run(verb, booked["id"], *extra)
        assert (code, out) == (2, "")
        assert err == (
            "livestreams: error: state: start call 1 of this booking (HTTP 502) may have created"
            f" a livestream upstream; the next attempt, due {due}, looks for it first: {verb}"
            " after that\n"
        )
        assert dump(url) == before
    # A reconcile found none: the unclear call is settled, and cancel goes through.
    add_calls(url, uuid.UUID(booked["id"]), ("reconcile", "absent", 200))
    assert run("cancel", booked["id"])[0] == 0
    assert json.loads(run("show", booked["id"], "--json")[1])["state"] == "cancelled"


def test_an_empty_database_says_to_upgrade(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LIVESTREAMS_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    code, _, err = run("list")
    assert code == 1
    assert "run `livestreams db upgrade`" in err


def test_settings_are_read_once_per_invocation_even_on_a_database_error(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("LIVESTREAMS_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    reads: list[Settings] = []
    original = Settings.from_env

    def counting(*args, **kwargs) -> Settings:
        reads.append(original(*args, **kwargs))
        return reads[-1]

    monkeypatch.setattr(Settings, "from_env", counting)
    code, _, err = run("list")
    assert code == 1 and "run `livestreams db upgrade`" in err
    assert len(reads) == 1


def test_db_upgrade_builds_the_schema(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LIVESTREAMS_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    code, out, _ = run("db", "upgrade")
    assert code == 0 and "is at head" in out
    assert run("list")[0] == 0


def _store_started(env, stream_id: str, key: str) -> None:
    """Store a started result the way the start task does: claimed, then finished."""
    settings = Settings.from_env(env)
    cipher = cipher_for(settings)
    with get_sessionmaker(settings.database_url).begin() as s:
        now = db_now(s)
        far = now + timedelta(days=4000)
        claimed = claims.claim_due(s, far, lookahead=0, lease=60, batch=10)
        assert [c.row_id for c in claimed] == [uuid.UUID(stream_id)]
        transitions.finish_started(
            s,
            claimed[0].row_id,
            claimed[0].token,
            now,
            Livestream(id="ls-1"),
            cipher.encrypt(Secret(key)),
            now,
        )


def test_stream_key_is_masked_unless_revealed(env) -> None:
    booked = schedule()
    key = "sk_live_0123456789abcdefSECRET"
    _store_started(env, booked["id"], key)
    for args in (
        ["show", booked["id"]],
        ["show", booked["id"], "--json"],
        ["list"],
        ["list", "--json"],
    ):
        code, out, _ = run(*args)
        assert code == 0
        assert key not in out
    assert "****CRET" in run("show", booked["id"])[1]
    code, out, _ = run("show", booked["id"], "--reveal-key", "--json")
    assert code == 0 and json.loads(out)["stream_key"] == key


def test_wrong_secret_key_fails_clearly_and_overwrites_nothing(env, monkeypatch) -> None:
    booked = schedule()
    _store_started(env, booked["id"], "sk_live_0123456789abcdefSECRET")
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    monkeypatch.setenv("LIVESTREAMS_SECRET_KEY", new_key())
    code, _, err = run("show", booked["id"], "--reveal-key")
    assert code == 1 and "decrypts" in err
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before
