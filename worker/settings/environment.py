"""Reading the settings from the environment: one table of variables, each with the setting it
fills and how it is read. The only code of the product that reads ``os.environ``.

A bad value raises ``SettingsError`` naming the variable, in one line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from importlib.util import find_spec
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from worker.errors import SettingsError
from worker.settings.values import (
    DEFAULT_DATABASE_URL,
    DEFAULT_RATE_LIMIT,
    Backoff,
    Cadence,
    Claims,
    RateLimit,
    Secret,
    Settings,
    Timeouts,
    Upstream,
    Webhooks,
)


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


# The database URLs the product takes, as a person would write them; the PostgreSQL driver it
# ships (the `postgres` extra) is psycopg 3, whatever the URL's scheme says.
DATABASE_URL_FORMS = (
    "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
    "(postgres:// and postgresql+psycopg:// read the same)"
)
POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+psycopg"})
SQLITE_SCHEMES = frozenset({"sqlite", "sqlite+pysqlite"})
POSTGRES_DRIVER = "postgresql+psycopg"


def read_database_url(raw: str, *, postgres_driver: bool) -> str:
    """The SQLAlchemy URL to use for ``raw``; ValueError (never quoting ``raw``, which may hold
    a password) when the product cannot use it. ``postgres_driver``: psycopg is installed."""
    scheme, sep, rest = raw.partition("://")
    scheme = scheme.lower()
    empty = not rest and scheme not in SQLITE_SCHEMES  # sqlite:// alone is one in memory
    if not sep or empty or not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        raise ValueError(f"is not a database URL; use {DATABASE_URL_FORMS}")
    if scheme in POSTGRES_SCHEMES:
        if not postgres_driver:
            raise ValueError(
                "PostgreSQL needs its driver: pip install 'livestream-scheduler[postgres]'"
            )
        url = f"{POSTGRES_DRIVER}://{rest}"
    elif scheme in SQLITE_SCHEMES:
        url = f"{scheme}://{rest}"
    else:
        raise ValueError(f"cannot use {scheme}://; use {DATABASE_URL_FORMS}")
    try:
        make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ValueError(f"is not a database URL; use {DATABASE_URL_FORMS}") from None
    return url


def _database_url(env: Mapping[str, str]) -> str:
    raw = _str(env, "LIVESTREAMS_DATABASE_URL", DEFAULT_DATABASE_URL)
    try:
        return read_database_url(raw, postgres_driver=find_spec("psycopg") is not None)
    except ValueError as exc:
        raise SettingsError("LIVESTREAMS_DATABASE_URL", str(exc)) from None


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


def load(env: Mapping[str, str]) -> Settings:
    """Every variable of :data:`VARIABLES` that is set, read into its group; the rest keep
    their defaults (those of the value objects). Not yet checked as a whole
    (``Settings.check``)."""
    groups: dict[str, dict[str, object]] = {}
    for name, path, read in VARIABLES:
        if not env.get(name, "").strip():
            continue
        group, _, attr = path.rpartition(".")
        groups.setdefault(group, {})[attr] = read(env, name)
    upstream = groups.pop("upstream", {})
    upstream["api_token"] = _token(env)
    upstream["timeouts"] = Timeouts(**groups.pop("upstream.timeouts", {}))  # type: ignore[arg-type]
    upstream["backoff"] = Backoff(**groups.pop("upstream.backoff", {}))  # type: ignore[arg-type]
    settings = Settings(
        **groups.pop("", {}),  # type: ignore[arg-type]
        upstream=Upstream(**upstream),  # type: ignore[arg-type]
        claims=Claims(**groups.pop("claims", {})),  # type: ignore[arg-type]
        cadence=Cadence(**groups.pop("cadence", {})),  # type: ignore[arg-type]
        webhooks=Webhooks(**groups.pop("webhooks", {})),  # type: ignore[arg-type]
    )
    assert not groups, f"variables of no group: {sorted(groups)}"
    return settings


# The one loader table: each variable, the setting it fills (group.field; "" is the top), and
# how it is read. Unset variables leave the setting at its default. The API token is read on
# its own (CLOUDFLARE_API_TOKEN or CLOUDFLARE_API_TOKEN_FILE, exclusive).
Reader = Callable[[Mapping[str, str], str], object]
VARIABLES: tuple[tuple[str, str, Reader], ...] = (
    ("LIVESTREAMS_DATABASE_URL", ".database_url", lambda env, _: _database_url(env)),
    ("LIVESTREAMS_BROKER_URL", ".broker_url", _text),
    ("LIVESTREAMS_SECRET_KEY", ".secret_keys", _keys),
    ("LIVESTREAMS_LOG_FORMAT", ".log_format", lambda env, _: log_format_from_env(env)),
    ("LIVESTREAMS_TASK_EVENTS", ".task_events", _flag),
    ("LIVESTREAMS_METRICS_PORT", ".metrics_port", lambda env, _: metrics_port_from_env(env)),
    ("LIVESTREAMS_SERIES_HORIZON", ".series_horizon_days", _whole),
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
