"""Outbound webhooks with real worker and beat processes, PostgreSQL and a Redis of the test's
own: a worker killed in the middle of a delivery, and a Redis killed and started empty, lose
no event; every one reaches the platform, verified by the `standardwebhooks` library, long
before the leases of the lost runs would have run out (the killed run's owner stopped beating;
the lost messages were never taken up)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from models import WebhookAttempt, WebhookDelivery, WebhookEvent
from models.db import get_sessionmaker
from tests.outbound_receiver import PlatformReceiver
from tests.pipeline import pipeline_for
from tests.processes import own_redis, wait_until
from worker.bookings import booking
from worker.cli import cli

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

BOOKINGS = 6


def test_a_killed_worker_and_an_emptied_redis_lose_no_event(tmp_path: Path) -> None:
    with (
        PlatformReceiver() as platform,
        own_redis(tmp_path) as redis_server,
        pipeline_for(
            "postgresql",
            tmp_path,
            env={
                "LIVESTREAMS_BROKER_URL": redis_server.url,
                "LIVESTREAMS_WEBHOOKS_ALLOW_PRIVATE": "1",
                "LIVESTREAMS_WEBHOOK_LEASE": "70",  # the default, said here: the test's point
            },
        ) as pipeline,
    ):
        added = CliRunner().invoke(
            cli, ["webhooks", "add", "--url", platform.url, "--json"], env=pipeline.env
        )
        platform.secrets = [json.loads(added.output)["secret"]]
        platform.delay = 2.0  # every answer takes 2 s: the worker dies with one in flight
        factory = get_sessionmaker(pipeline.settings.database_url)
        streams = [pipeline.book(3600) for _ in range(BOOKINGS)]
        with factory.begin() as s:  # six booking.cancelled events, all due at once
            for stream in streams:
                booking.cancel(s, booking.find(s, stream.id))

        def in_flight() -> bool:
            with factory() as s:
                query = select(WebhookAttempt.id).where(WebhookAttempt.finished_at.is_(None))
                return s.scalar(query.limit(1)) is not None

        wait_until(in_flight, 30, "a delivery to be in flight")
        pipeline.celery.kill("worker-1")  # SIGKILL, with its pool, mid-POST
        with factory() as s:  # when the claims handed out so far would run out on their own
            query = select(WebhookDelivery.lease_expires_at).where(
                WebhookDelivery.lease_expires_at.is_not(None)
            )
            leases = s.scalars(query).all()
        redis_server.kill()  # and every queued message with it
        redis_server.start()  # empty
        platform.delay = 0.0
        pipeline.celery.worker("worker-2")

        def all_delivered() -> bool:
            with factory() as s:
                states = s.scalars(select(WebhookDelivery.state)).all()
            return len(states) == BOOKINGS and set(states) == {"delivered"}

        wait_until(all_delivered, 60, "every delivery to be delivered")
        with factory() as s:
            events = {str(e.id): e for e in s.scalars(select(WebhookEvent))}
            delivered_at = s.scalars(select(WebhookDelivery.delivered_at)).all()
            died = s.scalars(
                select(WebhookAttempt).where(WebhookAttempt.finished_at.is_(None))
            ).all()
    got = platform.got
    assert len(events) == BOOKINGS
    # At least once: every event arrived, each verified; some more than once (in flight).
    assert {g.headers["webhook-id"] for g in got if g.answered == 200} >= set(events)
    assert all(g.verified_by == (0,) for g in got)
    for g in got:
        assert g.body == events[g.headers["webhook-id"]].payload.encode()
    assert died, "no attempt was cut by the kill: the test did not kill mid-delivery"
    # Taken back from the dead owner and sent again, not waited out: every delivery landed
    # before the first of the lost claims' leases would have let it be claimed again.
    assert leases and max(delivered_at) < min(leases)
