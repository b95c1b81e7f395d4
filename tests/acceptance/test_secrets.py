"""Secrets never leak: the API token and the stream keys, after a pipeline run with faults.

Real beat and worker processes on PostgreSQL and a Redis server of this test's own, watched
with ``redis-cli MONITOR`` for the whole run. Bookings go through a clean start, a 5xx, a 429,
an HTML 502, a start that hangs or drops after creating the livestream (adopted later), a
refusal whose message repeats the token, and an error body that carries a stream key. Then
none of these holds the token or any stream key the fake created in the clear:
- every log line of every process;
- every command and message body that crossed Redis (bodies are base64: decoded too);
- every error text stored (``last_error``, each attempt's message) and the whole database,
  whose stream key column holds ciphertext that decrypts to the key;
- the default output of ``list``, ``show``, ``attempts`` and ``status`` (text and ``--json``).
``show --reveal-key``, which prints the key on purpose, is the positive control.

The provider's webhooks carry the stream key in the clear: `livestreams serve` is given signed
deliveries of every kind (applied, replayed, stale, unknown stream, another event, a forged
signature, a body it cannot read), each with a stream key in it, and none of those keys is in
the database, the serve log or any answer either.

The platform's webhooks (outbound): an endpoint on loopback gets every event of the run, each
verified with the `standardwebhooks` library; no event body holds a stream key, and the
endpoint's `whsec_` secret, printed once by `webhooks add`, is nowhere else (logs, broker,
database, CLI output).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from models import ProviderWebhook, StreamState
from tests.dbdump import dump
from tests.outbound_receiver import PlatformReceiver
from tests.pipeline import TOKEN, Pipeline, pipeline_for
from tests.processes import free_port, own_redis, wait_until
from tests.webhook_signing import (
    PATH,
    encode,
    provider_time,
    public_pem,
    signed_headers,
    signing_key,
    status_update,
)
from worker.cli import cli
from worker.crypto import cipher_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

TERMINAL = (StreamState.STARTED, StreamState.FAILED, StreamState.MISSED)
BODY = re.compile(rb'body\\": \\"([A-Za-z0-9+/=]+)\\"')
# The stream key of a livestream that is not ours, in a webhook: recognisable anywhere.
WEBHOOK_KEY = "sk_live_WEBHOOK_ONLY_7f3a9c1e5b"


@contextmanager
def monitor(port: int, out: Path) -> Iterator[Path]:
    """Everything every client sends to the Redis server on ``port``, one command a line."""
    with out.open("wb") as sink:
        proc = subprocess.Popen(["redis-cli", "-p", str(port), "MONITOR"], stdout=sink)
    try:
        wait_until(lambda: out.read_bytes().startswith(b"OK"), 10, "redis-cli MONITOR")
        yield out
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


@pytest.fixture(params=["text", "json"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Pipeline, Path]]:
    with (
        own_redis(tmp_path) as server,
        monitor(server.port, tmp_path / "monitor.out") as watched,
        pipeline_for(
            "postgresql",
            tmp_path,
            env={
                "LIVESTREAMS_BROKER_URL": server.url,
                "LIVESTREAMS_RTK_WEBHOOK_PUBLIC_KEY": public_pem(signing_key()),
                "LIVESTREAMS_LOG_FORMAT": request.param,
                "LIVESTREAMS_WEBHOOKS_ALLOW_PRIVATE": "1",
            },
            workers=2,
        ) as pipeline,
    ):
        yield pipeline, watched


def broker_traffic(raw: bytes) -> bytes:
    """The MONITOR log with every base64 message body decoded after it."""
    decoded = []
    for match in BODY.finditer(raw):
        try:
            decoded.append(base64.b64decode(match.group(1), validate=True))
        except (binascii.Error, ValueError):
            continue
    return raw + b"\n" + b"\n".join(decoded)


def deliver_webhooks(pipeline: Pipeline, livestream_id: str, stream_key: str) -> str:
    """Signed deliveries of every kind to a `livestreams serve` of the pipeline, each carrying
    a stream key; returns every answer (status, headers, body) as text."""
    port = free_port()
    pipeline.celery.serve("serve", port)
    # An hour ahead: the product takes an instant later than its own clock as its now, so
    # this is the newest word on the stream whatever a status check of its own saw meanwhile.
    ahead = provider_time(datetime.now(UTC) + timedelta(hours=1))
    live = status_update(livestream_id, "LIVE", streamKey=stream_key, updatedAt=ahead)
    older = status_update(
        livestream_id, "OFFLINE", streamKey=stream_key, updatedAt="2020-01-01T00:00:00.000Z"
    )
    deliveries = [
        (live, "d-live", None, 200),
        (live, "d-live", None, 200),  # replayed
        (older, "d-older", None, 200),
        (status_update("ls-not-ours", "LIVE", streamKey=WEBHOOK_KEY), "d-unknown", None, 200),
        ({"event": "meeting.started", "streamKey": WEBHOOK_KEY}, "d-other", None, 200),
        (status_update(livestream_id, "IDLE", streamKey=WEBHOOK_KEY), "d-forged", "forger", 401),
        ({"event": "livestreaming.statusUpdate", "streamKey": WEBHOOK_KEY}, "d-bad", None, 400),
        (b'{"streamKey": "' + WEBHOOK_KEY.encode() + b'", ', "d-cut", None, 400),
    ]
    answers = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for payload, delivery, signer, expected in deliveries:
            body = encode(payload)
            key = signing_key(signer) if signer else None
            answer = client.post(PATH, content=body, headers=signed_headers(body, delivery, key))
            assert answer.status_code == expected, (delivery, answer.text)
            answers.append(f"{answer.status_code} {answer.headers} {answer.text}")
    assert [a.split(" ", 1)[0] for a in answers] == [str(d[3]) for d in deliveries]
    return "\n".join(answers)


def cli_output(pipeline: Pipeline, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env=pipeline.env, catch_exceptions=False)
    return result.output + (result.stderr or "")


def test_no_token_or_stream_key_in_logs_broker_errors_or_cli(run) -> None:
    pipeline, watched = run
    with PlatformReceiver() as platform:
        _check(pipeline, watched, platform)


def _check(pipeline: Pipeline, watched: Path, platform: PlatformReceiver) -> None:
    added = json.loads(cli_output(pipeline, "webhooks", "add", "--url", platform.url, "--json"))
    webhook_secret = added["secret"]
    platform.secrets = [webhook_secret]
    fake = pipeline.fake
    leak_token = json.dumps(
        {"success": False, "errors": [{"code": 10000, "message": f"bad token {TOKEN}"}]}
    )
    first = pipeline.book(1.5, name="clean")
    pipeline.wait_state(first.id, StreamState.STARTED)
    (created,) = pipeline.created_for(first.meeting_id)
    # An error page cut short in the middle of a document that repeats a stream key.
    cut = f'{{"success": false, "data": {{"stream_key": "{created.stream_key}", "id": "{created.id}'
    keyed = json.dumps({"success": False, "result": {"stream_key": created.stream_key}})
    faults: list[object] = [
        503, 429, "html502", "hang", "drop", {"status": 403, "body": leak_token},
        {"status": 502, "body": keyed}, {"status": 500, "body": cut},
    ]  # fmt: skip
    streams = [first]
    for fault in faults:
        meeting = str(uuid.uuid4())
        fake.script("start", fault, meeting_id=meeting)
        streams.append(pipeline.book(2.0, meeting_id=meeting))
    rows = [pipeline.wait_state(s.id, *TERMINAL, timeout=60) for s in streams]
    started = [r for r in rows if r.state == StreamState.STARTED]
    assert len(started) >= 6, [(r.state, r.last_error) for r in rows]

    keys = [c.stream_key for items in fake.created.values() for c in items]
    assert len(keys) >= len(started)
    # A part of a key leaks it too (a message cut at 150 characters still shows most of it):
    # any 16 characters of one (64 hex digits from the fake) count, far more than a mask shows.
    secrets = {"the API token": TOKEN, "the webhook secret": webhook_secret}
    secrets["the webhook secret's key"] = webhook_secret.removeprefix("whsec_")
    for key in keys:
        secrets |= {
            f"part of stream key {key[:6]}...": key[i : i + 16] for i in range(len(key) - 15)
        }

    # The provider's webhooks, each with a stream key in the clear, before anything is read.
    answers = deliver_webhooks(pipeline, created.id, created.stream_key)
    secrets["the stream key of a webhook"] = WEBHOOK_KEY
    assert '"result":"duplicate"' in answers and '"result":"unknown_stream"' in answers
    assert pipeline.row(first.id).state == StreamState.LIVE

    # The database: ciphertext only, and it decrypts to what the fake created.
    cipher = cipher_for(pipeline.settings)
    for row in started:
        (made,) = pipeline.created_for(row.meeting_id)
        assert row.stream_key_ciphertext is not None
        assert cipher.decrypt(row.stream_key_ciphertext).get() == made.stream_key
    database = dump(pipeline.settings.database_url)
    haystacks: dict[str, str] = {"database": repr(database), "webhook answers": answers}
    result = [c.name for c in ProviderWebhook.__table__.columns].index("result")
    stored = {row[0]: row[result] for row in database["provider_webhooks"]}
    # LIVE from the provider is applied, unless a status check saw LIVE first: the same
    # observation again changes nothing and is kept as stale.
    assert stored.pop("d-live") in ("applied", "stale")
    assert stored == {"d-older": "stale", "d-unknown": "unknown_stream", "d-other": "ignored"}

    # Error texts stored for ops, and what every process logged.
    for row in rows:
        texts = [row.last_error or "", *(a.error_message or "" for a in pipeline.attempts(row.id))]
        haystacks[f"errors of {row.id}"] = "\n".join(texts)
    for log in sorted(pipeline.celery.logdir.glob("*.log")):
        haystacks[f"log {log.name}"] = log.read_text(errors="replace")

    # The default output of the read-only commands.
    outputs = {"list": cli_output(pipeline, "list"), "status": cli_output(pipeline, "status")}
    outputs["list --json"] = cli_output(pipeline, "list", "--json")
    outputs["status --json"] = cli_output(pipeline, "status", "--json")
    outputs["webhooks list"] = cli_output(pipeline, "webhooks", "list", "--json")
    outputs["webhooks deliveries"] = cli_output(
        pipeline, "webhooks", "deliveries", added["id"], "--json"
    )
    for row in rows:
        for command in ("show", "attempts"):
            outputs[f"{command} {row.id}"] = cli_output(pipeline, command, str(row.id))
            outputs[f"{command} --json {row.id}"] = cli_output(
                pipeline, command, str(row.id), "--json"
            )
    haystacks.update({f"livestreams {k}": v for k, v in outputs.items()})

    # The platform's webhooks: one booking event per booking at least, every one verified.
    got = platform.wait_for(len(rows), timeout=60)
    assert all(g.verified_by == (0,) for g in got), [g.headers for g in got]
    told = {(g.event["type"], g.event["data"]["booking_id"]) for g in got}
    assert {str(r.id) for r in rows} <= {booking for _, booking in told}
    haystacks["webhooks received"] = "\n".join(f"{g.headers} {g.body!r}" for g in got)

    # Everything that crossed Redis, stopped only now so that nothing is missed.
    pipeline.celery.stop()
    traffic = broker_traffic(watched.read_bytes()).decode("utf-8", errors="replace")
    haystacks["redis traffic"] = traffic

    # Positive controls: each source was really captured, and the key is findable on purpose.
    assert str(first.id) in traffic, "MONITOR saw no start message"
    assert any(str(first.id) in v for k, v in haystacks.items() if k.startswith("log worker"))
    if pipeline.env["LIVESTREAMS_LOG_FORMAT"] == "json":  # the logs really were JSON
        worker_lines = [
            json.loads(line)
            for k, v in haystacks.items()
            if k.startswith("log worker")
            for line in v.splitlines()
            if line.startswith("{")
        ]
        assert any(d.get("action") == "stream_started" for d in worker_lines)
        assert '"action": "provider_webhook"' in haystacks["log serve.log"]
    assert "provider webhook d-unknown" in haystacks["log serve.log"]
    assert "provider webhook d-forged refused" in haystacks["log serve.log"]
    assert str(first.id) in outputs["list"]
    revealed = cli_output(pipeline, "show", str(first.id), "--reveal-key")
    assert created.stream_key in revealed

    leaks = sorted(
        {
            f"{what} in {where}"
            for where, text in haystacks.items()
            for what, secret in secrets.items()
            if secret in text
        }
    )
    assert not leaks, "secrets in the clear:\n" + "\n".join(leaks)
