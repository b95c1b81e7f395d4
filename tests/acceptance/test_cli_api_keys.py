"""`livestreams api-key`: the key printed once, listed by prefix only; bad input stores nothing."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.dbdump import dump
from worker.cli import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_create_prints_the_key_once_and_list_shows_only_its_prefix(env) -> None:
    code, out, _ = run(
        "api-key", "create", "--name", "platform", "--scope", "bookings:read",
        "--scope", "bookings:write", "--expires", "30d", "--json",
    )  # fmt: skip
    assert code == 0
    created = json.loads(out)
    key = created["key"]
    assert key.startswith(created["prefix"])
    assert created["scopes"] == ["bookings:read", "bookings:write"]
    assert created["state"] == "active" and created["expires_at"]

    code, out, _ = run("api-key", "create", "--name", "ops-board", "--scope", "ops")
    assert code == 0
    assert out.startswith("lsk_") and "not shown again" in out

    for args in (["api-key", "list"], ["api-key", "list", "--json"]):
        code, out, _ = run(*args)
        assert code == 0
        assert key not in out and key[len(created["prefix"]) :] not in out
        assert "platform" in out and "ops-board" in out
    listed = json.loads(run("api-key", "list", "--json")[1])
    assert [r["name"] for r in listed] == ["platform", "ops-board"]
    assert all("key" not in r and "hash" not in r for r in listed)


def test_revoke_by_name_or_id(env) -> None:
    code, out, _ = run("api-key", "create", "--name", "a", "--scope", "ops", "--json")
    made = json.loads(out)
    code, out, _ = run("api-key", "revoke", made["id"], "--json")
    assert code == 0 and json.loads(out)["state"] == "revoked"
    run("api-key", "create", "--name", "b", "--scope", "ops")
    code, out, _ = run("api-key", "revoke", "b")
    assert code == 0 and out.startswith("revoked b")
    states = {r["name"]: r["state"] for r in json.loads(run("api-key", "list", "--json")[1])}
    assert states == {"a": "revoked", "b": "revoked"}


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["create", "--name", "x", "--scope", "admin"], "scope"),
        (["create", "--name", "x", "--scope", ","], "scope"),
        (["create", "--name", "bad name", "--scope", "ops"], "name"),
        (["create", "--name", "dup", "--scope", "ops"], "name"),
        (["create", "--name", "x", "--scope", "ops", "--expires", "soon"], "expires"),
        (["create", "--name", "x", "--scope", "ops", "--expires", "999999w"], "expires"),
        (
            ["create", "--name", "x", "--scope", "ops", "--expires", "2020-01-01T00:00:00Z"],
            "expires",
        ),
        (["revoke", "nobody"], "name"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_stores_nothing(env, args, field) -> None:
    assert run("api-key", "create", "--name", "dup", "--scope", "ops")[0] == 0
    before = dump(env["LIVESTREAMS_DATABASE_URL"])
    code, out, err = run("api-key", *args)
    assert code == 2
    assert err.startswith(f"livestreams: error: {field}:") and err.count("\n") == 1
    assert out == ""
    assert dump(env["LIVESTREAMS_DATABASE_URL"]) == before


def test_bad_input_with_json_prints_the_error_as_json(env) -> None:
    code, out, _ = run("api-key", "create", "--name", "x", "--scope", "nope", "--json")
    assert code == 2
    assert json.loads(out)["exit_code"] == 2
