"""Settings, read once from the environment into frozen values (``values``: what there is to
set; ``environment``: the one table of variables that sets it)."""

from worker.settings.environment import (
    DATABASE_URL_FORMS,
    VARIABLES,
    load_public_key,
    log_format_from_env,
    metrics_dir_from_env,
    metrics_port_from_env,
    multiprocess_dir_is_set,
    read_database_url,
    set_multiprocess_dir,
)
from worker.settings.values import (
    CLOUDFLARE_WEBHOOK_KEY_URL,
    DEFAULT_BASE_URL,
    DEFAULT_BROKER_URL,
    DEFAULT_DATABASE_URL,
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

__all__ = [
    "CLOUDFLARE_WEBHOOK_KEY_URL",
    "DATABASE_URL_FORMS",
    "DEFAULT_BASE_URL",
    "DEFAULT_BROKER_URL",
    "DEFAULT_DATABASE_URL",
    "VARIABLES",
    "Backoff",
    "Cadence",
    "Claims",
    "RateLimit",
    "Secret",
    "Settings",
    "Timeouts",
    "Upstream",
    "Webhooks",
    "load_public_key",
    "log_format_from_env",
    "metrics_dir_from_env",
    "metrics_port_from_env",
    "multiprocess_dir_is_set",
    "read_database_url",
    "set_multiprocess_dir",
]
