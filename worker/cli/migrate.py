"""Run the Alembic migrations from code (`livestreams db upgrade`, the demo, the tests)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config

# A checkout's migrations/, beside the packages; an editable install reads them there.
CHECKOUT_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def migrations_dir() -> Path:
    """Where the migration scripts are: inside the installed package (a wheel carries them
    as ``models/migrations``, see pyproject.toml), else the checkout's. Never the current
    directory: `db upgrade` runs from anywhere."""
    packaged = Path(str(resources.files("models") / "migrations"))
    return packaged if (packaged / "env.py").is_file() else CHECKOUT_MIGRATIONS


def alembic_config(url: str) -> Config:
    # No alembic.ini: the script location is all Alembic needs here, and the caller's logging
    # (the CLI's, pytest's) is kept. alembic.ini serves the `alembic` command in a checkout.
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
