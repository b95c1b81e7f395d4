"""What every `livestreams` command shares: settings, sessions, output, and the error exits.

Exit codes: 0 success, 2 bad input (arguments, a refused booking or API key, a bad setting),
1 any other failure (database unreachable, a key that cannot decrypt, ...).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from models.db import get_sessionmaker
from worker.errors import InputError, LivestreamsError, SettingsError
from worker.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
_SETTINGS = "livestreams.settings"  # the key of the invocation's settings in click's meta


class Failure(click.ClickException):
    """An error printed as one line, with the exit code that says what kind it is."""

    def __init__(self, message: str, exit_code: int, as_json: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it on the class
        self.as_json = as_json

    def show(self, file: Any = None) -> None:
        if self.as_json:
            click.echo(json.dumps({"error": self.message, "exit_code": self.exit_code}))
        click.echo(f"livestreams: error: {self.message}", err=True)


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _db_message(exc: SQLAlchemyError, url: str) -> str:
    text = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return f"the database {safe_url(url)} has no schema yet: run `livestreams db upgrade`"
    return f"database {safe_url(url)}: {text}"


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the product's errors into one line on stderr and the documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("as_json"))
        try:
            return func(*args, **kwargs)
        except (InputError, SettingsError) as exc:
            raise Failure(str(exc), EXIT_BAD_INPUT, as_json) from None
        except LivestreamsError as exc:
            raise Failure(str(exc), EXIT_FAILURE, as_json) from None
        except SQLAlchemyError as exc:
            url = current_settings().database_url  # read already: the error came from its URL
            raise Failure(_db_message(exc, url), EXIT_FAILURE, as_json) from None

    return wrapper


def current_settings() -> Settings:
    """This invocation's settings: read from the environment once, kept on click's context."""
    meta = click.get_current_context().meta
    settings = meta.get(_SETTINGS)
    if settings is None:
        settings = meta[_SETTINGS] = Settings.from_env()
    assert isinstance(settings, Settings)
    return settings


def json_option(func: Callable[P, R]) -> Callable[P, R]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(func)


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with get_sessionmaker(settings.database_url).begin() as session:
        yield session


def emit(as_json: bool, data: Any, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)
