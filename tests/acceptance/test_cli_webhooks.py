"""`livestreams webhooks ...` as ops use it: the secret shown once, exit codes, the delivery
log, replay, and `status` naming an endpoint that has failed for over an hour."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from models import WebhookEndpoint
from models.db import db_now, get_sessionmaker
from worker.bookings import booking
from worker.cli import cli

URL = "http://127.0.0.1:9/hooks"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def allowed(env, monkeypatch) -> dict[str, str]:
    monkeypatch.setenv("LIVESTREAMS_WEBHOOKS_ALLOW_PRIVATE", "1")
    return env


def add(*extra: str) -> dict:
    code, out, err = run("webhooks", "add", "--url", URL, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def test_add_shows_the_secret_once_and_list_never(allowed) -> None:
    code, out, err = run("webhooks", "add", "--url", URL, "--event", "booking.started,stream.live")
    assert code == 0, err
    secret = out.splitlines()[0]
    assert secret.startswith("whsec_") and "not shown again" in out
    code, listed, _ = run("webhooks", "list")
    assert code == 0 and URL in listed and "booking.started stream.live" in listed
    assert secret not in listed and secret[6:] not in listed
    code, as_json, _ = run("webhooks", "list", "--json")
    (row,) = json.loads(as_json)
    assert "secret" not in row and secret not in as_json
    assert row["event_types"] == ["booking.started", "stream.live"] and row["enabled"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://127.0.0.1:9/x"], "loopback"),
        (["--url", "http://10.0.0.1/x"], "private"),
        (["--url", "http://169.254.169.254/latest"], "metadata"),
        (["--url", "ftp://example.com/x"], "http"),
    ],
)
def test_unsafe_urls_are_refused_with_exit_2_and_nothing_stored(env, args, message) -> None:
    code, _out, err = run("webhooks", "add", *args)
    assert code == 2 and message in err
    assert run("webhooks", "list")[1].strip() == "no webhook endpoints"


def test_an_unknown_event_type_is_refused(allowed) -> None:
    code, _, err = run("webhooks", "add", "--url", URL, "--event", "booking.exploded")
    assert code == 2 and "booking.exploded" in err


def test_disable_enable_rotate_and_unknown_ids(allowed) -> None:
    endpoint = add()
    code, out, _ = run("webhooks", "disable", endpoint["id"], "--reason", "maintenance", "--json")
    assert code == 0 and json.loads(out)["enabled"] is False
    assert json.loads(out)["disabled_reason"] == "maintenance"
    code, out, _ = run("webhooks", "enable", endpoint["id"], "--json")
    assert code == 0 and json.loads(out)["enabled"] is True
    code, out, _ = run("webhooks", "rotate-secret", endpoint["id"], "--json")
    rotated = json.loads(out)
    assert code == 0 and rotated["secret"] != endpoint["secret"]
    assert rotated["previous_secret_valid_until"] is not None
    code, _, err = run("webhooks", "disable", "00000000-0000-0000-0000-000000000000")
    assert code == 2 and "no webhook endpoint" in err
    code, _, err = run("webhooks", "replay", "not-an-id")
    assert code == 2


def test_deliveries_and_replay(allowed, settings, book) -> None:
    endpoint = add()
    stream = book()
    with get_sessionmaker(settings.database_url).begin() as s:
        booking.cancel(s, booking.find(s, stream.id))
    code, out, _ = run("webhooks", "deliveries", endpoint["id"], "--json")
    (delivery,) = json.loads(out)
    assert code == 0 and delivery["event_type"] == "booking.cancelled"
    assert delivery["state"] == "pending" and delivery["attempt_log"] == []
    code, out, _ = run("webhooks", "replay", delivery["id"], "--json")
    replayed = json.loads(out)
    assert code == 0 and replayed["event_id"] == delivery["event_id"]
    assert replayed["id"] != delivery["id"]
    code, out, _ = run("webhooks", "deliveries", endpoint["id"])
    assert code == 0 and out.count("booking.cancelled") == 2


def test_status_names_an_endpoint_failing_for_over_an_hour(allowed, settings) -> None:
    endpoint = add()
    url = settings.database_url
    with get_sessionmaker(url).begin() as s:
        s.execute(
            update(WebhookEndpoint).values(
                failures_in_a_row=7, failing_since=db_now(s) - timedelta(minutes=59)
            )
        )
    _, out, _ = run("status", "--json")
    assert json.loads(out)["failing_webhook_endpoints"] == []
    with get_sessionmaker(url).begin() as s:
        s.execute(update(WebhookEndpoint).values(failing_since=db_now(s) - timedelta(minutes=61)))
    _code, out, _ = run("status", "--json")
    report = json.loads(out)
    (failing,) = report["failing_webhook_endpoints"]
    assert failing["id"] == endpoint["id"] and failing["failures_in_a_row"] == 7
    # The platform's outage is reported, not counted as ill health of the pipeline.
    assert not any(endpoint["id"] in p for p in report["problems"])
    _, text, _ = run("status")
    assert endpoint["id"] in text
