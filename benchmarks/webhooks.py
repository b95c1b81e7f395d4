"""Case webhooks: outbound webhooks delivered to a platform's receiver on loopback.

Real beat and worker processes (one set for the whole case), the fake API (its streams go LIVE
a second after they start) and a receiver in a process of its own (benchmarks.receiver) that
answers 200 at once, notes when each message arrived and checks every signature. One endpoint
for every event type is registered through the product (worker.notify.endpoints.add), as
`livestreams webhooks add` does.

Delay of an event = when the receiver got it - the event row's ``created_at`` (the clock of the
state change's transaction). It is split at the delivery run's attempt row (``sent_at``,
written as the run takes up its claim): before it, waiting for a dispatch tick to claim the
delivery and for a worker process to take the task up; after it, the POST.

Three parts, in this order on the same processes:
- at rest: a trickle of bookings, each giving ``booking.started`` and then ``stream.live``;
- throughput: a backlog of events written in one transaction (worker.notify.outbox.emit_many), timed
  until the receiver has them all;
- burst: bookings due at one instant, first with the endpoint disabled (nothing is written to
  the outbox: the baseline), then enabled; start lateness of each beside the delay.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from benchmarks import burst as burst_case
from benchmarks.data import book, bulk_future, states
from benchmarks.lateness import lateness_ms, spread
from benchmarks.procs import ROOT, Celery, cpu_snapshot, wait_until
from benchmarks.receiver import VERIFIER
from benchmarks.report import Figure, figure, log, percentile
from benchmarks.services import Bench
from models import EventType, ScheduledStream, WebhookAttempt, WebhookDelivery, WebhookEvent
from models.db import db_now
from worker.crypto import cipher_for
from worker.dev.processes import CeleryProcesses, free_port
from worker.notify import endpoints, outbox
from worker.settings import Settings

CASE = "webhooks"
# One worker for every part: the burst case's, so that its start figures read alike.
POOL, CONCURRENCY = burst_case.POOL, burst_case.CONCURRENCY
ENV = {**burst_case.ENV, "LIVESTREAMS_WEBHOOKS_ALLOW_PRIVATE": "1"}
LIVE_AFTER = 1.0  # the fake's streams go LIVE this long after their start
LEAD = 7.0  # seconds from booking to the first instant of the trickle: past the lookahead
STARTED, LIVE = EventType.BOOKING_STARTED.value, EventType.STREAM_LIVE.value
# What each task run returned, as the worker logs it at INFO.
RESULT = re.compile(rb"Task livestreams\.(\w+)\[[^]]*\] succeeded in [0-9.e-]+s: '(\w+)'")


def sizes(bench: Bench) -> tuple[int, float, int, int]:
    """(trickle bookings, trickle seconds, backlog events, burst bookings)."""
    if bench.quick:
        return 50, 8.0, 500, 500
    return 200, 40.0, 2000, burst_case.size(bench)


class Receiver:
    """``with Receiver() as rx``: benchmarks.receiver in a child process, on a free port."""

    def __init__(self, bench: Bench) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/platform/events"
        self.log = bench.workdir / "receiver.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.secret = ""
        self.client = httpx.Client(base_url=self.base, timeout=30)

    def __enter__(self) -> Receiver:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.receiver", str(self.port)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self._answers, 30, "the webhook receiver to answer", interval=0.1)
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the receiver exited: {self.log.read_text()[-2000:]}")
        try:
            return self.client.get("/_count").status_code == 200
        except httpx.HTTPError:
            return False

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def reset(self, secret: str | None = None) -> None:
        """Forget what was received; verify with ``secret`` (if given) from now on."""
        self.secret = self.secret if secret is None else secret
        self.client.post("/_reset", content=self.secret.encode()).raise_for_status()

    def count(self) -> int:
        found: int = self.client.get("/_count").json()
        return found

    def records(self) -> list[tuple[str, float, bool]]:
        return [(i, at, ok) for i, at, ok in self.client.get("/_records").json()]


class TaskLog:
    """What the worker's task runs returned from now on, read from its INFO log."""

    def __init__(self, celery: CeleryProcesses, name: str = "worker") -> None:
        self.path = celery.log(name)
        self.start = self.path.stat().st_size

    def results(self) -> Counter[tuple[str, str]]:
        """(task, result) -> runs, e.g. ("track_stream", "stale")."""
        with self.path.open("rb") as log:
            log.seek(self.start)
            found = RESULT.finditer(log.read())
            return Counter((m[1].decode(), m[2].decode()) for m in found)


@dataclass
class Received:
    """What arrived, joined with the outbox: per event type, the delays in ms."""

    delay: dict[str, list[float]]  # created_at -> received
    wait: list[float]  # created_at -> the run's attempt written (tick claim + queue + pickup)
    post: list[float]  # the run's attempt written -> received
    events: int  # written in the part
    delivered: int  # distinct events received
    duplicates: int
    bad_signatures: int
    first: float | None  # time.time() of the first and last receipt
    last: float | None

    def all(self) -> list[float]:
        return [d for values in self.delay.values() for d in values]


def received(bench: Bench, rx: Receiver, since: datetime) -> Received:
    """Join what ``rx`` received with the events written at or after ``since``."""
    records = rx.records()
    first: dict[str, float] = {}
    for ident, at, _ in records:
        first[ident] = min(at, first.get(ident, at))
    E, D, A = WebhookEvent, WebhookDelivery, WebhookAttempt
    with bench.factory() as session:
        rows = session.execute(
            select(E.id, E.type, E.created_at, func.min(A.sent_at))
            .join(D, D.event_id == E.id)
            .outerjoin(A, A.delivery_id == D.id)
            .where(E.created_at >= since)
            .group_by(E.id, E.type, E.created_at)
        ).all()
    delay: dict[str, list[float]] = defaultdict(list)
    wait, post = [], []
    for ident, type_, created, sent in rows:
        got = first.get(str(ident))
        if got is None:
            continue
        delay[type_].append((got - created.timestamp()) * 1000)
        if sent is not None:
            wait.append((sent - created).total_seconds() * 1000)
            post.append((got - sent.timestamp()) * 1000)
    times = list(first.values())
    return Received(
        dict(delay), wait, post, len(rows), sum(1 for r in rows if str(r[0]) in first),
        len(records) - len(first), sum(1 for *_, ok in records if not ok),
        min(times, default=None), max(times, default=None),
    )  # fmt: skip


def register(bench: Bench, rx: Receiver) -> uuid.UUID:
    """An endpoint for every event type at the receiver, through the product; the secret,
    shown once, goes to the receiver to verify with."""
    settings = Settings.from_env({**bench.env, **ENV})
    with bench.factory.begin() as session:
        created = endpoints.add(
            session, settings, cipher_for(settings), url=rx.url, event_types=["*"]
        )
        ident = created.endpoint.id
    rx.reset(created.secret.get())
    return ident


def set_enabled(bench: Bench, endpoint: uuid.UUID, enabled: bool) -> None:
    with bench.factory.begin() as session:
        endpoints.set_enabled(session, endpoint, enabled, reason="benchmark baseline")


def now(bench: Bench) -> datetime:
    with bench.factory() as session:
        return db_now(session)


def wait_received(
    celery: CeleryProcesses, rx: Receiver, count: int, timeout: float, what: str
) -> None:
    def done() -> bool:
        celery.check_alive()
        return rx.count() >= count

    try:
        wait_until(done, timeout, what, interval=0.2)
    except TimeoutError as exc:
        log(f"{CASE}: {exc}: {rx.count()} of {count}")


def delay_figures(part: str, name: str, values: list[float], note: str | None) -> list[Figure]:
    return [
        figure(CASE, f"{part}_{name}_p50", percentile(values, 50), "ms", note=note),
        figure(CASE, f"{part}_{name}_p99", percentile(values, 99), "ms"),
        figure(CASE, f"{part}_{name}_max", max(values, default=None), "ms"),
    ]


def check_figures(part: str, got: Received) -> list[Figure]:
    """Every event written was delivered, once each, with a good signature."""
    return [
        figure(CASE, f"{part}_undelivered", got.events - got.delivered, "events", at_most=0,
               note=f"of {got.events} written"),
        figure(CASE, f"{part}_duplicates", got.duplicates, "messages"),
        figure(CASE, f"{part}_bad_signatures", got.bad_signatures, "messages", at_most=0,
               note=f"each checked by the receiver with {VERIFIER}"),
    ]  # fmt: skip


def split_figures(part: str, got: Received) -> list[Figure]:
    note = (
        "delay split at the run's attempt row: before = dispatch tick's claim + broker queue + "
        "worker pickup; after = the POST"
    )
    return [
        figure(CASE, f"{part}_before_run_p50", percentile(got.wait, 50), "ms", note=note),
        figure(CASE, f"{part}_before_run_p99", percentile(got.wait, 99), "ms"),
        figure(CASE, f"{part}_run_to_receipt_p50", percentile(got.post, 50), "ms"),
        figure(CASE, f"{part}_run_to_receipt_p99", percentile(got.post, 99), "ms"),
    ]


def at_rest(bench: Bench, celery: CeleryProcesses, rx: Receiver) -> tuple[list[Figure], float]:
    """The figures, and the seconds booking took per row (the bursts' lead allows for it)."""
    count, window, _, _ = sizes(bench)
    since = now(bench)
    started = time.monotonic()
    booked = book(bench, spread(count, window, LEAD))
    per_row = (time.monotonic() - started) / count
    log(f"{CASE}: at rest: {count} starts over {window:g} s, each then going live")
    time.sleep(max(0.0, (max(booked.values()) - datetime.now(UTC)).total_seconds()))
    wait_received(celery, rx, 2 * count, 60, "every booking.started and stream.live")
    got = received(bench, rx, since)
    rate = (
        got.delivered / (got.last - got.first) if got.last and got.first and got.last > got.first
        else None
    )  # fmt: skip
    note = (
        f"{count} bookings over {window:g} s, each booking.started then stream.live "
        f"(the fake goes LIVE after {LIVE_AFTER:g} s; the first status check is 2 s after "
        f"the start); worker --pool {POOL} -c {CONCURRENCY}, dispatch tick every "
        f"{bench.settings.claims.dispatch_interval:g} s"
    )
    figs = delay_figures("rest", "delay", got.all(), note)
    for type_ in (STARTED, LIVE):
        values = got.delay.get(type_, [])
        figs.append(figure(CASE, f"rest_delay_{type_}_p50", percentile(values, 50), "ms"))
        figs.append(figure(CASE, f"rest_delay_{type_}_p99", percentile(values, 99), "ms"))
    figs += split_figures("rest", got)
    figs.append(figure(CASE, "rest_delivered_rate", rate, "events/s",
                       note="first to last receipt: the offered load, not a ceiling"))  # fmt: skip
    return figs + check_figures("rest", got), per_row


def throughput(bench: Bench, celery: CeleryProcesses, rx: Receiver) -> list[Figure]:
    _, _, total, _ = sizes(bench)
    rx.reset()
    bulk_future(bench.database_url, total)  # bookings a day ahead: no tick claims one
    with bench.factory.begin() as session:
        ids = list(
            session.scalars(
                select(ScheduledStream.id).where(ScheduledStream.name.like("bulk-%")).limit(total)
            )
        )
        written = db_now(session)
        outbox.emit_many(session, EventType.STREAM_ENDED, ids, written)
    log(f"{CASE}: throughput: {len(ids)} events written in one transaction")
    worker = celery.procs["worker"].pid
    before = cpu_snapshot(worker, bench.database_name)
    wait_received(celery, rx, len(ids), 120, "the backlog to be delivered")
    cpu = cpu_snapshot(worker, bench.database_name)
    used = {group: cpu[group] - before[group] for group in cpu}
    got = received(bench, rx, written)
    took = got.last - written.timestamp() if got.last else None
    rate = got.delivered / took if took else None
    settings = bench.settings
    note = (
        f"{len(ids)} events (one delivery each) committed at once; worker --pool {POOL} "
        f"-c {CONCURRENCY}; a tick every {settings.claims.dispatch_interval:g} s claims at most "
        f"{settings.claims.batch} deliveries held at once (LIVESTREAMS_CLAIM_BATCH)"
    )
    figs = [
        figure(CASE, "backlog_delivered_rate", rate, "events/s", note=note),
        figure(CASE, "backlog_time_to_all_delivered", took, "s"),
        *delay_figures("backlog", "delay", got.all(), None),
        *check_figures("backlog", got),
    ]
    cpu_note = (
        "CPU from the commit to the last receipt, per delivered event, by process group "
        "(the dispatch ticks included; the receiver's process not)"
    )
    per = max(got.delivered, 1)
    for group, seconds in used.items():
        first = cpu_note if group == "worker_main" else None
        figs.append(figure(CASE, f"backlog_cpu_per_event_{group}", seconds / per * 1000, "ms",
                           note=first))  # fmt: skip
    cpu_total = sum(used.values()) / per * 1000
    figs.append(figure(CASE, "backlog_cpu_per_event_total", cpu_total, "ms"))
    return figs


@dataclass(frozen=True)
class BurstRun:
    lateness: list[float]  # ms, per booking
    to_all_started: float | None  # s from the instant
    instant: datetime
    runs: TaskLog  # the worker's task runs since the booking
    meetings: list[str]
    failed: int  # bookings whose start failed (when the wait ended)


def one_burst(
    bench: Bench, celery: CeleryProcesses, count: int, per_row: float, *, until_live: bool
) -> BurstRun:
    """``count`` bookings due at one instant: wait until all started (and, with
    ``until_live``, all live, so no later event of theirs falls in the next part).
    ``per_row``: seconds a booking took at rest; the burst's lead allows 2 ms, a busy machine
    takes longer, and a booking for an instant already past is refused."""
    runs = TaskLog(celery)
    lead = burst_case._lead(bench, count) + count * max(0.0, 1.5 * per_row - 0.002)
    instant = datetime.now(UTC) + timedelta(seconds=lead)
    booked = book(bench, [instant] * count)
    meetings = list(booked)
    time.sleep(max(0.0, (instant - datetime.now(UTC)).total_seconds()))
    want = "live" if until_live else "started"
    # A started stream goes live; a failed start stays failed (a busy machine fails some).
    reached = ("live", "failed") if until_live else ("started", "live", "failed")

    def done() -> bool:
        celery.check_alive()
        found = states(bench.database_url, meetings)
        return sum(found.get(state, 0) for state in reached) == count

    try:
        wait_until(done, burst_case.TIMEOUT, f"every booking of the burst to be {want}", 0.5)
    except TimeoutError as exc:
        log(f"{CASE}: {exc}: {states(bench.database_url, meetings)}")
    ids = [uuid.UUID(m) for m in meetings]
    with bench.factory() as session:
        last = session.scalar(
            select(func.max(ScheduledStream.started_at)).where(ScheduledStream.meeting_id.in_(ids))
        )
    took = (last - instant).total_seconds() if last is not None else None
    failed = states(bench.database_url, meetings).get("failed", 0)
    return BurstRun(lateness_ms(bench, booked), took, instant, runs, meetings, failed)


def settled(
    bench: Bench, celery: CeleryProcesses, rx: Receiver, meetings: list[str], since: datetime
) -> None:
    """Until every booking is live or failed and the receiver has every event since."""

    def done() -> bool:
        celery.check_alive()
        found = states(bench.database_url, meetings)
        if found.get("live", 0) + found.get("failed", 0) < len(meetings):
            return False
        with bench.factory() as session:
            written = session.scalar(select(func.count()).where(WebhookEvent.created_at >= since))
        return rx.count() >= (written or 0)

    try:
        wait_until(done, burst_case.TIMEOUT, "the burst's events", interval=0.5)
    except TimeoutError as exc:
        log(f"{CASE}: {exc}: {states(bench.database_url, meetings)}, {rx.count()} received")


def bursts(
    bench: Bench, celery: CeleryProcesses, rx: Receiver, endpoint: uuid.UUID, per_row: float
) -> list[Figure]:
    _, _, _, count = sizes(bench)
    set_enabled(bench, endpoint, False)
    log(f"{CASE}: burst of {count} with the endpoint disabled (the baseline)")
    base = one_burst(bench, celery, count, per_row, until_live=True)
    base_runs = base.runs.results()
    set_enabled(bench, endpoint, True)
    rx.reset()
    since = now(bench)
    log(f"{CASE}: burst of {count} with the endpoint enabled")
    run = one_burst(bench, celery, count, per_row, until_live=False)
    settled(bench, celery, rx, run.meetings, since)
    got = received(bench, rx, since)
    runs = run.runs.results()
    note = (
        f"{count} due at one instant; worker --pool {POOL} -c {CONCURRENCY}, "
        f"LIVESTREAMS_RATE_LIMIT={burst_case.RATE_LIMIT}; starts and deliveries share the "
        "worker and the broker queue"
    )
    last = got.last - run.instant.timestamp() if got.last else None
    figs = [
        *delay_figures(f"burst_{STARTED}", "delay", got.delay.get(STARTED, []), note),
        *delay_figures(f"burst_{LIVE}", "delay", got.delay.get(LIVE, []), None),
        *split_figures("burst", got),
        figure(CASE, "burst_time_to_all_delivered", last, "s", note="from the booked instant"),
        *check_figures("burst", got),
    ]
    late_note = "start lateness (fake received the start - booked instant), same burst size"
    stale_note = (
        "status-check runs that found their claim taken back (reaped and handed out again "
        "while the first message still waited in the queue); until all live / all delivered"
    )
    for label, r, ran in (("without_webhooks", base, base_runs), ("with_webhooks", run, runs)):
        first = label == "without_webhooks"
        figs += [
            figure(CASE, f"burst_lateness_p50_{label}", percentile(r.lateness, 50), "ms",
                   note=late_note if first else None),
            figure(CASE, f"burst_lateness_p99_{label}", percentile(r.lateness, 99), "ms"),
            figure(CASE, f"burst_time_to_all_started_{label}", r.to_all_started, "s"),
            figure(CASE, f"burst_failed_starts_{label}", r.failed, "bookings", at_most=0),
            figure(CASE, f"burst_stale_track_runs_{label}", ran["track_stream", "stale"], "runs",
                   note=stale_note if first else None),
        ]  # fmt: skip
    return figs


@contextlib.contextmanager
def live_after(bench: Bench) -> Iterator[None]:
    bench.fake.configure({"live_after": LIVE_AFTER, "webhooks": None})
    try:
        yield
    finally:  # the fake keeps its lifecycle across resets: later cases expect none
        bench.fake.configure({"live_after": None, "webhooks": None})


def run(bench: Bench) -> list[Figure]:
    bench.reset()
    time.sleep(1)  # let PostgreSQL settle after the truncate
    figs: list[Figure] = []
    with live_after(bench), Receiver(bench) as rx, Celery(bench, ENV) as celery:
        endpoint = register(bench, rx)
        celery.worker("worker", pool=POOL, concurrency=CONCURRENCY)
        celery.beat("beat")
        rest, per_row = at_rest(bench, celery, rx)
        figs += rest
        figs += throughput(bench, celery, rx)
        figs += bursts(bench, celery, rx, endpoint, per_row)
    return figs
