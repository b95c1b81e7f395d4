"""Settings, read once from the environment into a frozen value.

This is the only module that reads ``os.environ``. A bad value raises ``SettingsError`` naming
the variable, so a process refuses to start instead of failing halfway through a task.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

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
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str = DEFAULT_BROKER_URL
    api_token: Secret | None = None
    account_id: str | None = None
    app_id: str | None = None
    base_url: str = DEFAULT_BASE_URL
    secret_keys: tuple[Secret, ...] = field(default=())
    dispatch_interval: float = DEFAULT_DISPATCH_INTERVAL
    lookahead: float = DEFAULT_LOOKAHEAD
    start_window: float = DEFAULT_START_WINDOW
    lease: float = 0.0  # 0: derived from the call bound (see __post_init__)
    claim_batch: int = DEFAULT_CLAIM_BATCH
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_cap: float = DEFAULT_BACKOFF_CAP
    backoff_floor: float = DEFAULT_BACKOFF_FLOOR
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    write_timeout: float = DEFAULT_WRITE_TIMEOUT
    pool_timeout: float = DEFAULT_POOL_TIMEOUT
    rate_limit: RateLimit = RateLimit(1200, 300.0)
    stale_after: float = DEFAULT_STALE_AFTER
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    owner_timeout: float = DEFAULT_OWNER_TIMEOUT
    pickup_grace: float = DEFAULT_PICKUP_GRACE
    live_deadline: float = DEFAULT_LIVE_DEADLINE
    first_check: float = DEFAULT_FIRST_CHECK
    check_cap: float = DEFAULT_CHECK_CAP
    live_check: float = DEFAULT_LIVE_CHECK
    live_check_with_webhooks: float = DEFAULT_LIVE_CHECK_WITH_WEBHOOKS
    webhooks_fresh: float = DEFAULT_WEBHOOKS_FRESH
    max_duration: float = DEFAULT_MAX_DURATION
    # The provider's webhook signing key (PEM), given; None: fetched from webhook_key_url.
    rtk_webhook_public_key: str | None = None
    webhook_key_url: str = ""  # "": derived from base_url (see __post_init__)
    log_format: str = "text"  # or "json": one JSON object per line (worker.logformat)
    task_events: bool = False  # Celery task events, for Flower and celery-exporter
    metrics_port: int | None = None  # the worker's main process serves /metrics here
    # Outbound webhooks may go to loopback and private addresses (the demo and the tests).
    webhooks_allow_private: bool = False
    # A webhook delivery run holds its claim this long (worker.notify.claims); a run that
    # vanished (killed worker, flushed broker) is claimed again after it.
    webhook_lease: float = DEFAULT_WEBHOOK_LEASE
    # Days the outbound webhook log is kept once delivered or failed; 0 keeps it forever.
    webhook_retention_days: int = DEFAULT_WEBHOOK_RETENTION_DAYS
    # Days ahead for which a series' occurrences exist as bookings.
    series_horizon_days: int = DEFAULT_SERIES_HORIZON_DAYS

    def __post_init__(self) -> None:
        if self.lease <= 0:
            object.__setattr__(self, "lease", self.call_bound + LEASE_MARGIN)
        if not self.webhook_key_url:
            object.__setattr__(self, "webhook_key_url", _webhook_key_url(self.base_url))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        settings = cls(
            database_url=_str(env, "LIVESTREAMS_DATABASE_URL", DEFAULT_DATABASE_URL),
            broker_url=_str(env, "LIVESTREAMS_BROKER_URL", DEFAULT_BROKER_URL),
            api_token=_token(env),
            account_id=_ident(env, "CLOUDFLARE_ACCOUNT_ID"),
            app_id=_ident(env, "REALTIMEKIT_APP_ID"),
            base_url=_url(env, "CLOUDFLARE_BASE_URL", DEFAULT_BASE_URL),
            secret_keys=_keys(env),
            dispatch_interval=_seconds(
                env, "LIVESTREAMS_DISPATCH_INTERVAL", DEFAULT_DISPATCH_INTERVAL
            ),
            lookahead=_seconds(env, "LIVESTREAMS_LOOKAHEAD", DEFAULT_LOOKAHEAD, zero_ok=True),
            start_window=_seconds(env, "LIVESTREAMS_START_WINDOW", DEFAULT_START_WINDOW),
            lease=_seconds(env, "LIVESTREAMS_LEASE", 0.0, zero_ok=True),
            claim_batch=_int(env, "LIVESTREAMS_CLAIM_BATCH", DEFAULT_CLAIM_BATCH),
            backoff_base=_seconds(env, "LIVESTREAMS_BACKOFF_BASE", DEFAULT_BACKOFF_BASE),
            backoff_cap=_seconds(env, "LIVESTREAMS_BACKOFF_CAP", DEFAULT_BACKOFF_CAP),
            backoff_floor=_seconds(env, "LIVESTREAMS_BACKOFF_FLOOR", DEFAULT_BACKOFF_FLOOR),
            connect_timeout=_seconds(
                env, "LIVESTREAMS_HTTP_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT
            ),
            read_timeout=_seconds(env, "LIVESTREAMS_HTTP_READ_TIMEOUT", DEFAULT_READ_TIMEOUT),
            write_timeout=_seconds(env, "LIVESTREAMS_HTTP_WRITE_TIMEOUT", DEFAULT_WRITE_TIMEOUT),
            pool_timeout=_seconds(env, "LIVESTREAMS_HTTP_POOL_TIMEOUT", DEFAULT_POOL_TIMEOUT),
            rate_limit=_rate(env, "LIVESTREAMS_RATE_LIMIT", DEFAULT_RATE_LIMIT),
            stale_after=_seconds(env, "LIVESTREAMS_STALE_AFTER", DEFAULT_STALE_AFTER),
            heartbeat_interval=_seconds(
                env, "LIVESTREAMS_HEARTBEAT_INTERVAL", DEFAULT_HEARTBEAT_INTERVAL
            ),
            owner_timeout=_seconds(env, "LIVESTREAMS_OWNER_TIMEOUT", DEFAULT_OWNER_TIMEOUT),
            pickup_grace=_seconds(env, "LIVESTREAMS_PICKUP_GRACE", DEFAULT_PICKUP_GRACE),
            live_deadline=_seconds(env, "LIVESTREAMS_LIVE_DEADLINE", DEFAULT_LIVE_DEADLINE),
            first_check=_seconds(env, "LIVESTREAMS_FIRST_CHECK", DEFAULT_FIRST_CHECK),
            check_cap=_seconds(env, "LIVESTREAMS_CHECK_CAP", DEFAULT_CHECK_CAP),
            live_check=_seconds(env, "LIVESTREAMS_LIVE_CHECK", DEFAULT_LIVE_CHECK),
            live_check_with_webhooks=_seconds(
                env, "LIVESTREAMS_LIVE_CHECK_WITH_WEBHOOKS", DEFAULT_LIVE_CHECK_WITH_WEBHOOKS
            ),
            webhooks_fresh=_seconds(env, "LIVESTREAMS_WEBHOOKS_FRESH", DEFAULT_WEBHOOKS_FRESH),
            max_duration=_seconds(env, "LIVESTREAMS_MAX_DURATION", DEFAULT_MAX_DURATION),
            rtk_webhook_public_key=_public_key(env, "LIVESTREAMS_RTK_WEBHOOK_PUBLIC_KEY"),
            webhook_key_url=_optional_url(env, "LIVESTREAMS_RTK_WEBHOOK_KEY_URL"),
            log_format=log_format_from_env(env),
            task_events=_flag(env, "LIVESTREAMS_TASK_EVENTS"),
            metrics_port=metrics_port_from_env(env),
            webhooks_allow_private=_flag(env, "LIVESTREAMS_WEBHOOKS_ALLOW_PRIVATE"),
            webhook_lease=_seconds(env, "LIVESTREAMS_WEBHOOK_LEASE", DEFAULT_WEBHOOK_LEASE),
            webhook_retention_days=_int(
                env, "LIVESTREAMS_WEBHOOK_RETENTION_DAYS", DEFAULT_WEBHOOK_RETENTION_DAYS, least=0
            ),
            series_horizon_days=_int(
                env, "LIVESTREAMS_SERIES_HORIZON", DEFAULT_SERIES_HORIZON_DAYS, least=1
            ),
        )
        settings.check()
        return settings

    @property
    def call_limit(self) -> float:
        """The total time one upstream call may take: waiting for a connection, connecting,
        sending, and the answer. The client stops reading a body once it is used up."""
        return self.pool_timeout + self.connect_timeout + self.write_timeout + self.read_timeout

    @property
    def call_bound(self) -> float:
        """The longest one call can last: its limit, plus the one read that may be waiting
        when the limit passes (each read is bounded by the read timeout)."""
        return self.call_limit + self.read_timeout

    def check(self) -> None:
        """Refuse combinations that would break the exactly-once or on-time guarantees."""
        # The lease is the backstop that takes back a row whose owner looks alive but never
        # finishes; if it could run out mid-call, a second POST could create a second livestream.
        if self.lease <= self.call_bound + 5:
            raise SettingsError(
                "LIVESTREAMS_LEASE",
                f"must exceed the longest call (the HTTP timeouts added up, plus one more read"
                f" timeout) plus 5 s: {self.call_bound + 5:g} s",
            )
        if self.lookahead >= self.lease:
            raise SettingsError("LIVESTREAMS_LOOKAHEAD", "must be shorter than LIVESTREAMS_LEASE")
        # A row is claimed only when a tick sees it within the lookahead; a shorter lookahead
        # than the interval between ticks would send the start after its instant.
        if self.lookahead < self.dispatch_interval:
            raise SettingsError(
                "LIVESTREAMS_LOOKAHEAD",
                f"must be at least LIVESTREAMS_DISPATCH_INTERVAL ({self.dispatch_interval:g} s)",
            )
        if self.backoff_cap < self.backoff_floor:
            raise SettingsError(
                "LIVESTREAMS_BACKOFF_CAP", "must not be below LIVESTREAMS_BACKOFF_FLOOR"
            )
        # Two missed heartbeats in a row are not yet a death: a busy database may delay one.
        if self.owner_timeout < 3 * self.heartbeat_interval:
            raise SettingsError(
                "LIVESTREAMS_OWNER_TIMEOUT",
                "must be at least 3 times LIVESTREAMS_HEARTBEAT_INTERVAL"
                f" ({3 * self.heartbeat_interval:g} s)",
            )
        if self.check_cap < self.first_check:
            raise SettingsError(
                "LIVESTREAMS_CHECK_CAP", "must not be below LIVESTREAMS_FIRST_CHECK"
            )

    def require_token(self) -> Secret:
        if self.api_token is None:
            raise SettingsError(
                "CLOUDFLARE_API_TOKEN", "is not set (nor CLOUDFLARE_API_TOKEN_FILE)"
            )
        return self.api_token


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    value = _str(env, name, default).rstrip("/")
    if not re.match(r"^https?://[^/\s]+", value):
        raise SettingsError(name, f"must be an http(s) URL, got {value!r}")
    return value


def log_format_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``LIVESTREAMS_LOG_FORMAT``: text (the default) or json. Read on its own as well, by
    the logging set-up, which runs before (and whatever) the other settings are read."""
    env = os.environ if environ is None else environ
    value = env.get("LIVESTREAMS_LOG_FORMAT", "").strip().lower() or "text"
    if value not in ("text", "json"):
        raise SettingsError("LIVESTREAMS_LOG_FORMAT", f"must be text or json, got {value!r}")
    return value


def metrics_port_from_env(environ: Mapping[str, str] | None = None) -> int | None:
    """``LIVESTREAMS_METRICS_PORT``: where a worker serves its metrics (unset: it does not).
    Read on its own as well, before anything imports the metrics library (worker.metrics)."""
    env = os.environ if environ is None else environ
    raw = env.get("LIVESTREAMS_METRICS_PORT", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SettingsError("LIVESTREAMS_METRICS_PORT", f"must be a TCP port, got {raw!r}")
    return int(raw)


def metrics_dir_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """``LIVESTREAMS_METRICS_DIR`` (default: the system's temporary folder): where a worker's
    processes keep their metric files, in a folder of the worker's own."""
    env = os.environ if environ is None else environ
    return env.get("LIVESTREAMS_METRICS_DIR", "").strip() or None


def multiprocess_dir_is_set(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get("PROMETHEUS_MULTIPROC_DIR"))


def set_multiprocess_dir(path: str) -> None:
    """Name the metric files' folder for this process and the children it forks, as
    prometheus_client reads it (before it is imported)."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(name, f"must be 1 or 0 (true or false), got {raw!r}")


def _optional_url(env: Mapping[str, str], name: str) -> str:
    return _url(env, name, "") if env.get(name, "").strip() else ""


def _webhook_key_url(base_url: str) -> str:
    if base_url == DEFAULT_BASE_URL:
        return CLOUDFLARE_WEBHOOK_KEY_URL
    origin = re.match(r"^https?://[^/]+", base_url)
    return (origin.group(0) if origin else base_url) + "/.well-known/webhooks.json"


def _public_key(env: Mapping[str, str], name: str) -> str | None:
    """A PEM public key given inline, or the path of a file holding one."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.startswith("-----BEGIN"):
        try:
            raw = Path(raw).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(
                name, f"is neither a PEM key nor a readable file: {exc.strerror}"
            ) from None
    if "-----BEGIN PUBLIC KEY-----" not in raw:
        raise SettingsError(name, "must be a PEM public key (-----BEGIN PUBLIC KEY-----)")
    # Read now, so that a key that cannot verify anything stops start-up, not each delivery.
    try:
        load_public_key(raw)
    except ValueError as exc:
        raise SettingsError(name, f"must be an RSA public key in PEM: {exc}") from None
    return raw


def _ident(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if len(value) > 32:
        raise SettingsError(name, f"must be at most 32 characters, got {len(value)}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float, *, zero_ok: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(name, f"must be a number of seconds, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise SettingsError(name, f"must be a finite number of seconds >= 0, got {raw!r}")
    if value == 0 and not zero_ok:
        raise SettingsError(name, "must be greater than 0")
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, least: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(name, f"must be a whole number, got {raw!r}") from None
    if value < least:
        raise SettingsError(name, f"must be at least {least}, got {value}")
    return value


def _rate(env: Mapping[str, str], name: str, default: str) -> RateLimit:
    raw = _str(env, name, default)
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*", raw)
    if not match or int(match.group(1)) < 1 or float(match.group(2)) <= 0:
        raise SettingsError(name, f"must look like REQUESTS/SECONDS (e.g. 1200/300), got {raw!r}")
    return RateLimit(int(match.group(1)), float(match.group(2)))


def _token(env: Mapping[str, str]) -> Secret | None:
    value = env.get("CLOUDFLARE_API_TOKEN", "").strip()
    path = env.get("CLOUDFLARE_API_TOKEN_FILE", "").strip()
    if value and path:
        raise SettingsError(
            "CLOUDFLARE_API_TOKEN_FILE", "set only one of CLOUDFLARE_API_TOKEN and this"
        )
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(
                "CLOUDFLARE_API_TOKEN_FILE", f"cannot read {path}: {exc.strerror}"
            ) from None
        if not value:
            raise SettingsError("CLOUDFLARE_API_TOKEN_FILE", f"{path} is empty")
    if value and any(ch.isspace() for ch in value):
        # Checked here because a token with a newline would corrupt the Authorization header.
        raise SettingsError("CLOUDFLARE_API_TOKEN", "must not contain white space")
    return Secret(value) if value else None


def _keys(env: Mapping[str, str]) -> tuple[Secret, ...]:
    raw = env.get("LIVESTREAMS_SECRET_KEY", "").strip()
    if not raw:
        return ()
    return tuple(Secret(part.strip()) for part in raw.split(",") if part.strip())


def load_public_key(pem: str) -> RSAPublicKey:
    """An RSA public key from PEM; raises ValueError if it is not one."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError("not a PEM public key") from exc
    if not isinstance(key, RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key
