from __future__ import annotations

import pytest

from worker.errors import SettingsError
from worker.settings import VARIABLES, RateLimit, Secret, Settings, read_database_url


def test_defaults_are_the_embedded_ones() -> None:
    s = Settings.from_env({})
    assert s.database_url == "sqlite:///livestreams.db"
    assert s.broker_url == "redis://localhost:6379/0"
    assert s.upstream.base_url == "https://api.cloudflare.com/client/v4"
    assert s.upstream.api_token is None
    assert s.upstream.rate_limit == RateLimit(1200, 300.0)
    assert s == Settings()  # the defaults of the environment and of the value objects agree


def test_each_variable_fills_its_group() -> None:
    """One loader table: a few of its rows, read into the value objects they name."""
    s = Settings.from_env(
        {
            "LIVESTREAMS_CLAIM_BATCH": "7",
            "LIVESTREAMS_HTTP_READ_TIMEOUT": "12",
            "LIVESTREAMS_BACKOFF_CAP": "90",
            "LIVESTREAMS_FIRST_CHECK": "3",
            "LIVESTREAMS_WEBHOOKS_ALLOW_PRIVATE": "1",
            "LIVESTREAMS_TASK_EVENTS": "yes",
        }
    )
    assert s.claims.batch == 7
    assert s.upstream.timeouts.read == 12 and s.upstream.timeouts.connect == 5
    assert s.upstream.backoff.cap == 90 and s.upstream.backoff.base == 1
    assert s.cadence.first_check == 3
    assert s.webhooks.allow_private is True and s.task_events is True
    every = {name for name, _, _ in VARIABLES}
    assert len(every) == len(VARIABLES)  # no variable read twice


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"LIVESTREAMS_DISPATCH_INTERVAL": "soon"}, "LIVESTREAMS_DISPATCH_INTERVAL"),
        ({"LIVESTREAMS_DISPATCH_INTERVAL": "0"}, "LIVESTREAMS_DISPATCH_INTERVAL"),
        ({"LIVESTREAMS_LEASE": "-1"}, "LIVESTREAMS_LEASE"),
        ({"LIVESTREAMS_LEASE": "nan"}, "LIVESTREAMS_LEASE"),
        ({"LIVESTREAMS_LEASE": "10"}, "LIVESTREAMS_LEASE"),  # shorter than one HTTP call
        ({"LIVESTREAMS_LOOKAHEAD": "70"}, "LIVESTREAMS_LOOKAHEAD"),
        # A lookahead shorter than the tick interval would send starts after their instant.
        ({"LIVESTREAMS_LOOKAHEAD": "0.5"}, "LIVESTREAMS_LOOKAHEAD"),
        ({"LIVESTREAMS_DISPATCH_INTERVAL": "6"}, "LIVESTREAMS_LOOKAHEAD"),
        ({"LIVESTREAMS_OWNER_TIMEOUT": "2"}, "LIVESTREAMS_OWNER_TIMEOUT"),
        ({"LIVESTREAMS_HTTP_READ_TIMEOUT": "30", "LIVESTREAMS_LEASE": "60"}, "LIVESTREAMS_LEASE"),
        ({"LIVESTREAMS_CLAIM_BATCH": "0"}, "LIVESTREAMS_CLAIM_BATCH"),
        ({"LIVESTREAMS_CLAIM_BATCH": "ten"}, "LIVESTREAMS_CLAIM_BATCH"),
        ({"LIVESTREAMS_WEBHOOK_RETENTION_DAYS": "-1"}, "LIVESTREAMS_WEBHOOK_RETENTION_DAYS"),
        ({"LIVESTREAMS_WEBHOOK_RETENTION_DAYS": "1.5"}, "LIVESTREAMS_WEBHOOK_RETENTION_DAYS"),
        ({"LIVESTREAMS_RATE_LIMIT": "1200"}, "LIVESTREAMS_RATE_LIMIT"),
        ({"CLOUDFLARE_BASE_URL": "ftp://x"}, "CLOUDFLARE_BASE_URL"),
        ({"CLOUDFLARE_ACCOUNT_ID": "a" * 33}, "CLOUDFLARE_ACCOUNT_ID"),
        ({"CLOUDFLARE_API_TOKEN": "two words"}, "CLOUDFLARE_API_TOKEN"),
        (
            {"CLOUDFLARE_API_TOKEN": "t", "CLOUDFLARE_API_TOKEN_FILE": "/x"},
            "CLOUDFLARE_API_TOKEN_FILE",
        ),
        ({"CLOUDFLARE_API_TOKEN_FILE": "/nonexistent/token"}, "CLOUDFLARE_API_TOKEN_FILE"),
    ],
)
def test_a_bad_setting_names_its_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    assert err.value.variable == variable
    assert str(err.value).startswith(variable + ":")
    assert "\n" not in str(err.value)


def test_the_lease_derives_from_the_longest_call() -> None:
    """Pool + connect + write + read is the call's limit; one more read may be under way when
    it passes. The lease covers that and a margin, so it never runs out inside a live call."""
    default = Settings.from_env({})
    assert default.upstream.timeouts.call_limit == 5 + 5 + 5 + 10
    assert default.call_bound == 35
    assert default.claims.lease == 45
    slow = Settings.from_env({"LIVESTREAMS_HTTP_READ_TIMEOUT": "30"})
    assert slow.claims.lease == 5 + 5 + 5 + 30 + 30 + 10
    assert Settings.from_env({"LIVESTREAMS_LEASE": "120"}).claims.lease == 120
    assert Settings().claims.lease == default.claims.lease


def test_token_from_file_and_never_in_repr(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text("s3cr3t-token-value\n")
    s = Settings.from_env({"CLOUDFLARE_API_TOKEN_FILE": str(path)})
    assert s.require_token().get() == "s3cr3t-token-value"
    assert "s3cr3t" not in repr(s)
    assert "s3cr3t" not in str(s.upstream.api_token)
    assert "s3cr3t" not in f"{s.upstream.api_token}"


def test_secret_keys_are_comma_separated_for_rotation() -> None:
    s = Settings.from_env({"LIVESTREAMS_SECRET_KEY": "new, old"})
    assert s.secret_keys == (Secret("new"), Secret("old"))


def test_require_token_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="CLOUDFLARE_API_TOKEN"):
        Settings.from_env({}).require_token()


PG = "postgresql+psycopg://app:pw@db:5432/livestreams"


@pytest.mark.parametrize(
    ("raw", "read"),
    [
        ("postgresql://app:pw@db:5432/livestreams", PG),
        ("postgres://app:pw@db:5432/livestreams", PG),
        ("PostgreSQL://app:pw@db:5432/livestreams", PG),
        (PG, PG),
        (
            "postgresql://db/livestreams?sslmode=require",
            "postgresql+psycopg://db/livestreams?sslmode=require",
        ),
        ("sqlite:///livestreams.db", "sqlite:///livestreams.db"),
        ("sqlite:////var/lib/livestreams.db", "sqlite:////var/lib/livestreams.db"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_a_database_url_is_read_as_the_driver_the_product_ships(raw: str, read: str) -> None:
    assert read_database_url(raw, postgres_driver=True) == read
    assert Settings.from_env({"LIVESTREAMS_DATABASE_URL": raw}).database_url == read


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ("mysql://app:pw@db/livestreams", "cannot use mysql://"),
        # Another driver than the one the product ships would fail at the first connection.
        ("postgresql+psycopg2://app:pw@db/livestreams", "cannot use postgresql+psycopg2://"),
        ("db:5432/livestreams", "is not a database URL"),
        ("postgresql://", "is not a database URL"),
        ("postgresql://db:port/livestreams", "is not a database URL"),
        ("app:pw@db://livestreams", "is not a database URL"),
    ],
)
def test_an_unusable_database_url_is_one_line_naming_the_forms(raw: str, said: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"LIVESTREAMS_DATABASE_URL": raw})
    line = str(caught.value)
    assert line.startswith(f"LIVESTREAMS_DATABASE_URL: {said}") and "\n" not in line
    assert "sqlite:///PATH" in line and "postgresql://" in line
    assert "pw" not in line  # a password in the URL is never repeated


def test_postgresql_without_its_driver_says_how_to_install_it() -> None:
    with pytest.raises(ValueError, match=r"livestream-scheduler\[postgres\]"):
        read_database_url("postgresql://db/livestreams", postgres_driver=False)
