"""`livestreams demo`: the whole product on one machine with nothing configured.

A SQLite database and a SQLite broker (kombu's SQLAlchemy transport) in ./.demo, the fake
RealtimeKit server on a free loopback port, real `celery beat` and `celery worker` processes,
and a handful of bookings a few seconds ahead: one clean, one that meets a 5xx first, one
that meets a 429, one the API refuses for good, and one booked with an end, stopped there.
It prints each change of each booking as it lands (started, live, ended, failed), then a
table of every case (expected, got, lateness), and exits 0 once every booking has reached what
its case is about (1 if not after a bounded wait).
Beside them runs `livestreams serve` on a free loopback port, with an API key of every scope
printed, so the bookings can be looked at over HTTP and on the ops page while the demo runs;
with ``keep`` (`--keep`) everything stays up after the run until Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, sessionmaker

from models import (
    START_SETTLED_STATES,
    DeliveryState,
    EventType,
    ScheduledStream,
    WebhookDelivery,
)
from models.db import dispose_all, get_sessionmaker
from worker.bookings import booking, observe
from worker.bookings.present import explain, stream_dict
from worker.cli.migrate import upgrade
from worker.crypto import StreamKeyCipher, cipher_for
from worker.dev.demo_receiver import Receiver
from worker.dev.fake_realtimekit import FakeRealtimeKit
from worker.dev.processes import CeleryProcesses, free_port
from worker.errors import ProcessExitedError
from worker.http import apikeys
from worker.notify import endpoints
from worker.settings import Settings

DEMO_TOKEN = "demo-token-not-a-secret"  # noqa: S105 - the fake server's token, loopback only
ACCOUNT = "demo-account"
APP = "demo-app"
SHOWN_FIELDS = (
    "livestream_id",
    "livestream_status",
    "ingest_server",
    "playback_url",
    "stream_key",
    "lateness_seconds",
    "last_error",
)


@dataclass(frozen=True)
class Case:
    label: str
    delay: float  # seconds from now
    script: Callable[[FakeRealtimeKit, str], None]
    goal: str = "live"  # the state the demo waits for
    duration: float | None = None  # booked with an end this long after its start


def _clean(fake: FakeRealtimeKit, meeting: str) -> None:
    return None


def _five_hundred_first(fake: FakeRealtimeKit, meeting: str) -> None:
    fake.script("start", 503, meeting_id=meeting)


def _rate_limited(fake: FakeRealtimeKit, meeting: str) -> None:
    fake.script("start", {"status": 429, "retry_after": "2"}, meeting_id=meeting)


def _refused(fake: FakeRealtimeKit, meeting: str) -> None:
    fake.script("start", 403, meeting_id=meeting)


CASES = [
    Case("clean start, goes live", 3, _clean),
    Case("503 first, then started", 4, _five_hundred_first),
    Case("429 with retry-after 2 s, then started", 5, _rate_limited),
    Case("refused with 403", 6, _refused, goal="failed"),
    Case("booked for 6 s: goes live, stopped at its end", 8, _clean, "ended", 6.0),
]
GOALS = {"live": ("live", "ended"), "ended": ("ended",), "failed": ("failed",)}


def run_demo(
    workdir: Path, timeout: float, echo: Callable[[str], None], *, keep: bool = False
) -> int:
    """Run the demo in ``workdir`` (emptied first); 0 when every case came out as expected.

    ``keep``: afterwards, leave the processes, the fake API and the receiver up until Ctrl-C
    (KeyboardInterrupt), then stop them and return the same code.
    """
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    db_url = f"sqlite:///{workdir / 'livestreams.db'}"
    with FakeRealtimeKit(token=DEMO_TOKEN, live_after=2.0) as fake, Receiver(_told(echo)) as rx:
        env = {
            **os.environ,
            "LIVESTREAMS_DATABASE_URL": db_url,
            "LIVESTREAMS_BROKER_URL": os.environ.get(
                "LIVESTREAMS_BROKER_URL", f"sqla+sqlite:///{workdir / 'broker.db'}"
            ),
            "CLOUDFLARE_API_TOKEN": DEMO_TOKEN,
            "CLOUDFLARE_BASE_URL": fake.base_url,
            "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
            "REALTIMEKIT_APP_ID": APP,
            "LIVESTREAMS_BACKOFF_BASE": "1",
            # Check a new livestream every second or two, so the demo sees it go live at once.
            "LIVESTREAMS_FIRST_CHECK": "1",
            "LIVESTREAMS_CHECK_CAP": "2",
            # The demo's platform receives its events on loopback.
            "LIVESTREAMS_WEBHOOKS_ALLOW_PRIVATE": "1",
        }
        env.pop("CLOUDFLARE_API_TOKEN_FILE", None)
        settings = Settings.from_env(env)
        upgrade(db_url)
        cipher = cipher_for(settings, create=True)
        echo(f"fake RealtimeKit API at {fake.base_url}; database {db_url}")
        with get_sessionmaker(db_url).begin() as session:
            made = endpoints.add(
                session, settings, cipher, url=rx.url, event_types=[t.value for t in EventType]
            )
        rx.secret = made.secret.get()
        echo(f"a platform's webhook receiver at {rx.url}, told of every event, signed")
        # Ctrl-C lands here (the processes have groups of their own) and the block stops them.
        try:
            with CeleryProcesses(env, workdir, grace=10) as celery:
                # Served first and waited for: started beside the worker, its start-up would
                # slow the worker's and make the first booking late.
                served = _serve(settings, celery, echo)
                if served is None:
                    return 1
                # The fake tells the product of each status change, signed, as RealtimeKit
                # does; the serve process checks the signature with the fake's published key.
                fake.configure({"webhooks": {"url": f"{served}/v1/webhooks/realtimekit"}})
                # Worker and beat are waited for before anything is booked: on a busy machine
                # their start-up took longer than the first booking's lead, which then started
                # late and showed the demo's start-up as the product's lateness.
                try:
                    celery.worker("worker", pool="threads", concurrency=4)
                    celery.beat("beat")
                except (ProcessExitedError, TimeoutError) as exc:
                    echo(f"worker or beat did not start ({exc}); see the logs in {workdir}")
                    return 1
                labels = _book(settings, fake, echo)
                code = _watch(settings, labels, cipher, timeout, echo, celery)
                _table(settings, labels, echo)
                if keep:
                    code = _stay_up(celery, served, echo) or code
                return code
        finally:
            dispose_all()
            hooks = fake.stats()["webhooks"]
            echo(
                f"the fake API received {fake.starts_received} start call(s) and created "
                f"{sum(len(v) for v in fake.created.values())} livestream(s); it sent "
                f"{hooks['sent']} signed status webhook(s), answered {hooks['by_answer']}"
            )
            good = sum(1 for _, ok in rx.events if ok)
            echo(f"the platform's receiver got {len(rx.events)} event(s), {good} verified")


def _told(echo: Callable[[str], None]) -> Callable[[dict[str, Any], bool], None]:
    def told(event: dict[str, Any], ok: bool) -> None:
        if not ok:
            echo("    platform: a delivery whose signature did not verify (answered 401)")
            return
        data = event.get("data", {})
        echo(f"    platform: {event.get('type')} for {data.get('booking_id')} (signature verified)")

    return told


# The port of `livestreams serve` and of the README's curl lines, when it is free.
DEMO_API_PORT = 8000


def _serve(settings: Settings, celery: CeleryProcesses, echo: Callable[[str], None]) -> str | None:
    """`livestreams serve` beside beat and worker, and a key of every scope to call it with;
    stopped with them. Its URL, or None (and why) if it does not answer."""
    with get_sessionmaker(settings.database_url).begin() as session:
        _, key = apikeys.create(session, name="demo", scopes=apikeys.SCOPES)
    port = free_port(preferred=DEMO_API_PORT)
    try:
        celery.serve("serve", port)
    except (ProcessExitedError, TimeoutError) as exc:
        echo(f"livestreams serve did not start; see {celery.log('serve')} ({type(exc).__name__})")
        return None
    url = f"http://127.0.0.1:{port}"
    echo(
        f"HTTP API at {url} (OpenAPI: {url}/openapi.json) while the demo runs; "
        "an API key of every scope:"
    )
    echo(f"    curl -H 'Authorization: Bearer {key}' {url}/v1/bookings")
    echo(f"ops page at {url}/ops: sign in with the same key, {key}")
    return url


def _stay_up(celery: CeleryProcesses, url: str, echo: Callable[[str], None]) -> int:
    """Until Ctrl-C or SIGTERM: 0 then, or 1 if a process exits meanwhile."""
    echo(f"\nstill up (--keep): the API and ops page at {url}, worker and beat; Ctrl-C stops all")
    # A shell without job control starts a background job with SIGINT ignored: take it back,
    # and let a plain `kill` stop everything as cleanly as Ctrl-C does.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            celery.check_alive()
            time.sleep(0.5)
    except ProcessExitedError as exc:
        echo(f"{exc.name} exited (code {exc.returncode}); see {exc.log}")
        return 1
    except KeyboardInterrupt:
        echo("stopping every demo process")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _book(
    settings: Settings, fake: FakeRealtimeKit, echo: Callable[[str], None]
) -> dict[uuid.UUID, Case]:
    labels: dict[uuid.UUID, Case] = {}
    now = datetime.now(UTC)
    with get_sessionmaker(settings.database_url).begin() as session:
        for i, case in enumerate(CASES, 1):
            meeting = str(uuid.uuid4())
            case.script(fake, meeting)
            stream = booking.schedule(
                session, settings,
                meeting_id=meeting, at=now + timedelta(seconds=case.delay),
                tz="Europe/Berlin", name=f"demo-{i}", width=1280, height=720,
                duration=case.duration,
            ).stream  # fmt: skip
            labels[stream.id] = case
            echo(f"booked {stream.id} at +{case.delay:.0f} s: {case.label}")
    return labels


def _watch(
    settings: Settings,
    labels: dict[uuid.UUID, Case],
    cipher: StreamKeyCipher,
    timeout: float,
    echo: Callable[[str], None],
    celery: CeleryProcesses,
) -> int:
    seen: dict[uuid.UUID, str] = {}  # the state last shown
    done: set[uuid.UUID] = set()
    deadline = time.monotonic() + timeout
    factory = get_sessionmaker(settings.database_url)
    while time.monotonic() < deadline:
        try:
            celery.check_alive()
        except ProcessExitedError as exc:
            echo(f"{exc.name} exited early (code {exc.returncode}); see {exc.log}")
            return 1
        with factory() as session:
            for row in session.scalars(_rows(labels)):
                if seen.get(row.id) == row.state or row.state not in START_SETTLED_STATES:
                    continue
                _show(session, row, labels[row.id], cipher, echo, first=row.id not in seen)
                seen[row.id] = row.state
                if row.state in GOALS[labels[row.id].goal]:
                    done.add(row.id)
        if len(done) == len(labels):
            echo("\nevery booking has reached what its case is about")
            _drain(factory, deadline)
            return 0
        time.sleep(0.2)
    echo(f"\ntimed out after {timeout:.0f} s with {len(labels) - len(done)} booking(s) not there")
    return 1


def _table(settings: Settings, labels: dict[uuid.UUID, Case], echo: Callable[[str], None]) -> None:
    """Every case in one table: what it should come to, what it came to, how late it started."""
    with get_sessionmaker(settings.database_url)() as session:
        rows = {row.id: row for row in session.scalars(_rows(labels))}
    lines = [("case", "expected", "got", "lateness")]
    for stream_id, case in labels.items():
        row = rows.get(stream_id)
        late = None if row is None else stream_dict(row)["lateness_seconds"]
        got = "?" if row is None else row.state
        mark = "" if got in GOALS[case.goal] else "  <- not as expected"
        lines.append(
            (
                case.label,
                " or ".join(GOALS[case.goal]),
                got + mark,
                "-" if late is None else f"{late:+.3f} s",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    echo("")
    for line in lines:
        echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def _rows(labels: dict[uuid.UUID, Case]) -> Select[tuple[ScheduledStream]]:
    return select(ScheduledStream).where(ScheduledStream.id.in_(list(labels)))


def _drain(factory: sessionmaker[Session], deadline: float) -> None:
    """Wait (within the demo's time) for the platform's last events to be delivered."""
    pending = select(func.count()).where(WebhookDelivery.state == DeliveryState.PENDING.value)
    while time.monotonic() < deadline:
        with factory() as session:
            if not session.scalar(pending):
                return
        time.sleep(0.2)


def _show(
    session: Session,
    row: ScheduledStream,
    case: Case,
    cipher: StreamKeyCipher,
    echo: Callable[[str], None],
    *,
    first: bool,
) -> None:
    why = explain(row, booking.attempts(session, row))
    echo(f"\n[{case.label}] {row.id}: {row.state}\n    why: {why}")
    if first:
        data = stream_dict(row, cipher)
        for key in SHOWN_FIELDS:
            if data[key] is not None:
                echo(f"    {key:<18}{data[key]}")
    if row.state in ("live", "ended"):
        steps = [f"{e.status} ({e.source})" for e in observe.timeline(session, row.id)]
        echo(f"    timeline          {' -> '.join(steps)}")
