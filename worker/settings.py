"""Settings, read once from the environment into a frozen value.

This is the only module that reads ``os.environ``. A bad value raises ``SettingsError`` naming
the variable, so a process refuses to start instead of failing halfway through a task.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
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
        """Every variable of :data:`VARIABLES` that is set, read into its group; the rest keep
        their defaults. A bad value raises SettingsError naming the variable."""
        env = os.environ if environ is None else environ
        groups: dict[str, dict[str, object]] = {}
        for name, path, read in VARIABLES:
            if not env.get(name, "").strip():
                continue
            group, _, attr = path.rpartition(".")
            groups.setdefault(group, {})[attr] = read(env, name)
        upstream = groups.pop("upstream", {})
        upstream["api_token"] = _token(env)
        for nested, kind in (("timeouts", Timeouts), ("backoff", Backoff)):
            upstream[nested] = kind(**groups.pop(f"upstream.{nested}", {}))  # type: ignore[arg-type]
        settings = cls(
            **groups.pop("", {}),  # type: ignore[arg-type]
            upstream=Upstream(**upstream),  # type: ignore[arg-type]
            claims=Claims(**groups.pop("claims", {})),  # type: ignore[arg-type]
            cadence=Cadence(**groups.pop("cadence", {})),  # type: ignore[arg-type]
            webhooks=Webhooks(**groups.pop("webhooks", {})),  # type: ignore[arg-type]
        )
        assert not groups, f"variables without a group: {sorted(groups)}"
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


def _keys(env: Mapping[str, str], name: str = "LIVESTREAMS_SECRET_KEY") -> tuple[Secret, ...]:
    raw = env.get(name, "").strip()
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


def _seconds_or_zero(env: Mapping[str, str], name: str) -> float:
    return _seconds(env, name, 0.0, zero_ok=True)


def _secs(env: Mapping[str, str], name: str) -> float:
    return _seconds(env, name, 0.0)


def _whole(env: Mapping[str, str], name: str) -> int:
    return _int(env, name, 0)


def _days(env: Mapping[str, str], name: str) -> int:
    return _int(env, name, 0, least=0)


def _text(env: Mapping[str, str], name: str) -> str:
    return _str(env, name, "")


def _http_url(env: Mapping[str, str], name: str) -> str:
    return _url(env, name, "")


def _rate_limit(env: Mapping[str, str], name: str) -> RateLimit:
    return _rate(env, name, DEFAULT_RATE_LIMIT)


# The one loader table: each variable, the setting it fills (group.field; "" is the top), and
# how it is read. Unset variables leave the setting at its default. The API token is read on
# its own (CLOUDFLARE_API_TOKEN or CLOUDFLARE_API_TOKEN_FILE, exclusive).
Reader = Callable[[Mapping[str, str], str], object]
VARIABLES: tuple[tuple[str, str, Reader], ...] = (
    ("LIVESTREAMS_DATABASE_URL", ".database_url", _text),
    ("LIVESTREAMS_BROKER_URL", ".broker_url", _text),
    ("LIVESTREAMS_SECRET_KEY", ".secret_keys", _keys),
    ("LIVESTREAMS_LOG_FORMAT", ".log_format", lambda env, _: log_format_from_env(env)),
    ("LIVESTREAMS_TASK_EVENTS", ".task_events", _flag),
    ("LIVESTREAMS_METRICS_PORT", ".metrics_port", lambda env, _: metrics_port_from_env(env)),
    ("CLOUDFLARE_ACCOUNT_ID", "upstream.account_id", _ident),
    ("REALTIMEKIT_APP_ID", "upstream.app_id", _ident),
    ("CLOUDFLARE_BASE_URL", "upstream.base_url", _http_url),
    ("LIVESTREAMS_RATE_LIMIT", "upstream.rate_limit", _rate_limit),
    ("LIVESTREAMS_HTTP_CONNECT_TIMEOUT", "upstream.timeouts.connect", _secs),
    ("LIVESTREAMS_HTTP_READ_TIMEOUT", "upstream.timeouts.read", _secs),
    ("LIVESTREAMS_HTTP_WRITE_TIMEOUT", "upstream.timeouts.write", _secs),
    ("LIVESTREAMS_HTTP_POOL_TIMEOUT", "upstream.timeouts.pool", _secs),
    ("LIVESTREAMS_BACKOFF_BASE", "upstream.backoff.base", _secs),
    ("LIVESTREAMS_BACKOFF_CAP", "upstream.backoff.cap", _secs),
    ("LIVESTREAMS_BACKOFF_FLOOR", "upstream.backoff.floor", _secs),
    ("LIVESTREAMS_DISPATCH_INTERVAL", "claims.dispatch_interval", _secs),
    ("LIVESTREAMS_LOOKAHEAD", "claims.lookahead", _seconds_or_zero),
    ("LIVESTREAMS_START_WINDOW", "claims.start_window", _secs),
    ("LIVESTREAMS_LEASE", "claims.lease", _seconds_or_zero),
    ("LIVESTREAMS_CLAIM_BATCH", "claims.batch", _whole),
    ("LIVESTREAMS_HEARTBEAT_INTERVAL", "claims.heartbeat_interval", _secs),
    ("LIVESTREAMS_OWNER_TIMEOUT", "claims.owner_timeout", _secs),
    ("LIVESTREAMS_PICKUP_GRACE", "claims.pickup_grace", _secs),
    ("LIVESTREAMS_STALE_AFTER", "claims.stale_after", _secs),
    ("LIVESTREAMS_FIRST_CHECK", "cadence.first_check", _secs),
    ("LIVESTREAMS_CHECK_CAP", "cadence.check_cap", _secs),
    ("LIVESTREAMS_LIVE_CHECK", "cadence.live_check", _secs),
    ("LIVESTREAMS_LIVE_CHECK_WITH_WEBHOOKS", "cadence.live_check_with_webhooks", _secs),
    ("LIVESTREAMS_LIVE_DEADLINE", "cadence.live_deadline", _secs),
    ("LIVESTREAMS_WEBHOOKS_FRESH", "cadence.webhooks_fresh", _secs),
    ("LIVESTREAMS_MAX_DURATION", "cadence.max_duration", _secs),
    ("LIVESTREAMS_RTK_WEBHOOK_PUBLIC_KEY", "webhooks.provider_public_key", _public_key),
    ("LIVESTREAMS_RTK_WEBHOOK_KEY_URL", "webhooks.key_url", _http_url),
    ("LIVESTREAMS_WEBHOOKS_ALLOW_PRIVATE", "webhooks.allow_private", _flag),
    ("LIVESTREAMS_WEBHOOK_LEASE", "webhooks.lease", _secs),
    ("LIVESTREAMS_WEBHOOK_RETENTION_DAYS", "webhooks.retention_days", _days),
)
