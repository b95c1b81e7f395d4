"""The settings' value objects and their defaults: what each part of the product is told.

``Settings`` holds a few top-level settings and one value object per concern (``Upstream``,
``Claims``, ``Cadence``, ``Webhooks``). They are read from the environment by
``worker.settings.environment`` (one table of variables), the only code that reads
``os.environ``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from worker.errors import SettingsError

DEFAULT_DATABASE_URL = "sqlite:///livestreams.db"
DEFAULT_BROKER_URL = "redis://localhost:6379/0"
DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
DEFAULT_DISPATCH_INTERVAL = 1.0  # seconds between dispatch ticks
DEFAULT_LOOKAHEAD = 5.0  # claim rows this far ahead: their launch is prepared before the instant
DEFAULT_START_WINDOW = 900.0  # after scheduled_at + this, no start is tried (deadline)
# The lease is derived from the longest call (Settings.call_bound) plus this margin, unless set.
LEASE_MARGIN = 10.0
DEFAULT_HEARTBEAT_INTERVAL = 1.0  # how often a process holding claims says it is alive
DEFAULT_OWNER_TIMEOUT = 5.0  # a claim whose owner has not said so for this long is taken back
DEFAULT_PICKUP_GRACE = 3.0  # a claim no worker took up this long after its due instant, too
DEFAULT_CLAIM_BATCH = 500  # rows claimed per statement; claims not yet taken up, at most
DEFAULT_BACKOFF_BASE = 1.0
DEFAULT_BACKOFF_CAP = 60.0
DEFAULT_BACKOFF_FLOOR = 0.5  # a retry is never due at once
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_WRITE_TIMEOUT = 5.0
DEFAULT_POOL_TIMEOUT = 5.0
# Cloudflare allows 1,200 requests per 5 minutes per token across its whole API.
DEFAULT_RATE_LIMIT = "1200/300"
DEFAULT_STALE_AFTER = 30.0  # `livestreams status` fails when the last tick is older
# Following a livestream once it started (worker.follow.claims):
DEFAULT_LIVE_DEADLINE = 300.0  # not LIVE this long after its start: flagged not_live
DEFAULT_FIRST_CHECK = 2.0  # the first status check, this long after the start
DEFAULT_CHECK_CAP = 30.0  # until LIVE is seen, checks back off up to this interval
DEFAULT_LIVE_CHECK = 300.0  # while live, and no provider webhook came lately: check this often
DEFAULT_LIVE_CHECK_WITH_WEBHOOKS = 1800.0  # while live, and provider webhooks are flowing
DEFAULT_WEBHOOKS_FRESH = 600.0  # provider webhooks are "flowing" if one came this recently
DEFAULT_MAX_DURATION = 86400.0  # ends_at at most this long after the start
# Outbound webhooks: each phase of a POST (connect, send, each read) is bounded by 15 s and the
# body read stops 15 s in, so a run still holding its delivery after this has vanished. A
# shorter lease only risks sending a message twice (delivery is at least once), never losing it.
DEFAULT_WEBHOOK_LEASE = 70.0
# The outbound webhook log (events, deliveries, attempts) is kept this many days
# (worker.notify.retention).
DEFAULT_WEBHOOK_RETENTION_DAYS = 30
# Where the provider publishes its webhook signing key, for Cloudflare's own API; for any other
# base URL (the fake API), the same path on its origin.
# Recurring series: occurrences are made as bookings this many days ahead (worker.series).
DEFAULT_SERIES_HORIZON_DAYS = 30
CLOUDFLARE_WEBHOOK_KEY_URL = "https://api.realtime.cloudflare.com/.well-known/webhooks.json"


class Secret:
    """A string that never shows itself in ``repr``, ``str`` or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` upstream calls per ``window`` seconds for one API token."""

    requests: int
    window: float


@dataclass(frozen=True)
class Timeouts:
    """How long each phase of one upstream HTTP call may take, in seconds."""

    connect: float = DEFAULT_CONNECT_TIMEOUT
    read: float = DEFAULT_READ_TIMEOUT
    write: float = DEFAULT_WRITE_TIMEOUT
    pool: float = DEFAULT_POOL_TIMEOUT

    @property
    def call_limit(self) -> float:
        """The total time one upstream call may take: waiting for a connection, connecting,
        sending, and the answer. The client stops reading a body once it is used up."""
        return self.pool + self.connect + self.write + self.read

    @property
    def call_bound(self) -> float:
        """The longest one call can last: its limit, plus the one read that may be waiting
        when the limit passes (each read is bounded by the read timeout)."""
        return self.call_limit + self.read


@dataclass(frozen=True)
class Backoff:
    """How retries of a call are spaced (worker.upstream.backoff.next_due)."""

    base: float = DEFAULT_BACKOFF_BASE  # seconds before the first retry, before jitter
    cap: float = DEFAULT_BACKOFF_CAP  # the longest wait between two attempts
    floor: float = DEFAULT_BACKOFF_FLOOR  # never retry sooner than this, whatever the jitter


@dataclass(frozen=True)
class Upstream:
    """The RealtimeKit API: where it is, who we are to it, and how it is called."""

    api_token: Secret | None = None
    account_id: str | None = None
    app_id: str | None = None
    base_url: str = DEFAULT_BASE_URL
    rate_limit: RateLimit = RateLimit(1200, 300.0)
    timeouts: Timeouts = Timeouts()
    backoff: Backoff = Backoff()


@dataclass(frozen=True)
class Claims:
    """The dispatch tick, its claims and their leases (worker.dispatch, worker.lease)."""

    dispatch_interval: float = DEFAULT_DISPATCH_INTERVAL
    lookahead: float = DEFAULT_LOOKAHEAD
    start_window: float = DEFAULT_START_WINDOW
    lease: float = 0.0  # 0: derived from the call bound (see Settings.__post_init__)
    batch: int = DEFAULT_CLAIM_BATCH
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    owner_timeout: float = DEFAULT_OWNER_TIMEOUT
    pickup_grace: float = DEFAULT_PICKUP_GRACE
    stale_after: float = DEFAULT_STALE_AFTER


@dataclass(frozen=True)
class Cadence:
    """Following a livestream once it started: how often to check, and for how long."""

    first_check: float = DEFAULT_FIRST_CHECK
    check_cap: float = DEFAULT_CHECK_CAP
    live_check: float = DEFAULT_LIVE_CHECK
    live_check_with_webhooks: float = DEFAULT_LIVE_CHECK_WITH_WEBHOOKS
    live_deadline: float = DEFAULT_LIVE_DEADLINE
    webhooks_fresh: float = DEFAULT_WEBHOOKS_FRESH
    max_duration: float = DEFAULT_MAX_DURATION


@dataclass(frozen=True)
class Webhooks:
    """The provider's webhooks taken in, and the platform's webhooks sent out."""

    # The provider's webhook signing key (PEM), given; None: fetched from ``key_url``.
    provider_public_key: str | None = None
    key_url: str = ""  # "": derived from the upstream base URL (see Settings.__post_init__)
    # Outbound webhooks may go to loopback and private addresses (the demo and the tests).
    allow_private: bool = False
    # A delivery run holds its claim this long (worker.notify.claims); a run whose owner stops
    # beating is taken back sooner.
    lease: float = DEFAULT_WEBHOOK_LEASE
    # Days the outbound webhook log is kept once delivered or failed; 0 keeps it forever.
    retention_days: int = DEFAULT_WEBHOOK_RETENTION_DAYS


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str = DEFAULT_BROKER_URL
    secret_keys: tuple[Secret, ...] = field(default=())
    log_format: str = "text"  # or "json": one JSON object per line (worker.logformat)
    task_events: bool = False  # Celery task events, for Flower and celery-exporter
    metrics_port: int | None = None  # the worker's main process serves /metrics here
    # Days ahead for which a series' occurrences exist as bookings.
    series_horizon_days: int = DEFAULT_SERIES_HORIZON_DAYS
    upstream: Upstream = Upstream()
    claims: Claims = Claims()
    cadence: Cadence = Cadence()
    webhooks: Webhooks = Webhooks()

    def __post_init__(self) -> None:
        if self.claims.lease <= 0:
            lease = self.upstream.timeouts.call_bound + LEASE_MARGIN
            object.__setattr__(self, "claims", replace(self.claims, lease=lease))
        if not self.webhooks.key_url:
            key_url = _webhook_key_url(self.upstream.base_url)
            object.__setattr__(self, "webhooks", replace(self.webhooks, key_url=key_url))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of ``environ`` (the process's environment by default), checked.

        A bad value raises SettingsError naming the variable, so a process refuses to start
        instead of failing halfway through a task."""
        from worker.settings.environment import load  # reads the variables into these values

        settings = load(os.environ if environ is None else environ)
        settings.check()
        return settings

    @property
    def call_bound(self) -> float:
        return self.upstream.timeouts.call_bound

    def check(self) -> None:
        """Refuse combinations that would break the exactly-once or on-time guarantees."""
        claims, cadence, backoff = self.claims, self.cadence, self.upstream.backoff
        # The lease is the backstop that takes back a row whose owner looks alive but never
        # finishes; if it could run out mid-call, a second POST could create a second livestream.
        if claims.lease <= self.call_bound + 5:
            raise SettingsError(
                "LIVESTREAMS_LEASE",
                f"must exceed the longest call (the HTTP timeouts added up, plus one more read"
                f" timeout) plus 5 s: {self.call_bound + 5:g} s",
            )
        if claims.lookahead >= claims.lease:
            raise SettingsError("LIVESTREAMS_LOOKAHEAD", "must be shorter than LIVESTREAMS_LEASE")
        # A row is claimed only when a tick sees it within the lookahead; a shorter lookahead
        # than the interval between ticks would send the start after its instant.
        if claims.lookahead < claims.dispatch_interval:
            raise SettingsError(
                "LIVESTREAMS_LOOKAHEAD",
                f"must be at least LIVESTREAMS_DISPATCH_INTERVAL ({claims.dispatch_interval:g} s)",
            )
        if backoff.cap < backoff.floor:
            raise SettingsError(
                "LIVESTREAMS_BACKOFF_CAP", "must not be below LIVESTREAMS_BACKOFF_FLOOR"
            )
        # Two missed heartbeats in a row are not yet a death: a busy database may delay one.
        if claims.owner_timeout < 3 * claims.heartbeat_interval:
            raise SettingsError(
                "LIVESTREAMS_OWNER_TIMEOUT",
                "must be at least 3 times LIVESTREAMS_HEARTBEAT_INTERVAL"
                f" ({3 * claims.heartbeat_interval:g} s)",
            )
        if cadence.check_cap < cadence.first_check:
            raise SettingsError(
                "LIVESTREAMS_CHECK_CAP", "must not be below LIVESTREAMS_FIRST_CHECK"
            )

    def require_token(self) -> Secret:
        if self.upstream.api_token is None:
            raise SettingsError(
                "CLOUDFLARE_API_TOKEN", "is not set (nor CLOUDFLARE_API_TOKEN_FILE)"
            )
        return self.upstream.api_token


def _webhook_key_url(base_url: str) -> str:
    if base_url == DEFAULT_BASE_URL:
        return CLOUDFLARE_WEBHOOK_KEY_URL
    origin = re.match(r"^https?://[^/]+", base_url)
    return (origin.group(0) if origin else base_url) + "/.well-known/webhooks.json"
