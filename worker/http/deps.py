"""What routes take as arguments: settings, a session per request, the caller's API key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from models import ApiKey
from models.db import db_now, get_sessionmaker
from worker.bookings import plaintext
from worker.errors import MissingScope
from worker.http import apikeys
from worker.settings import Settings

# auto_error=False: a missing header becomes our own 401 problem, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="An API key: `livestreams api-key create`.")


def get_settings(request: Request) -> Settings:
    settings = request.app.state.settings
    assert isinstance(settings, Settings)
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def plain_text(request: Request) -> None:
    """Every route's path, query and form fields hold no control character (JSON bodies are
    checked by worker.http.schemas.Body): ControlCharacters names the first that does."""
    fields = [*request.path_params.items(), *request.query_params.multi_items()]
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = await request.form()
        fields += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    for name, value in fields:
        plaintext.check(name, value, plaintext.ControlCharacters)


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back if it raises."""
    with get_sessionmaker(settings.database_url)() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# scope="function": the commit runs before the response is sent, so a 201 is never answered
# for a booking whose commit then fails (FastAPI 0.121, "Dependencies with yield and scope").
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


def require_scope(scope: str) -> Callable[[Session, HTTPAuthorizationCredentials | None], ApiKey]:
    """A dependency that authenticates the bearer key and checks that it grants ``scope``.

    Refusals (401, 403) change nothing; a granted request notes when the key was last used.
    """

    def authorized(session: SessionDep, credentials: Credentials) -> ApiKey:
        now = db_now(session)  # once per request: the clock is a round trip on PostgreSQL
        key = apikeys.authenticate(session, credentials.credentials if credentials else None, now)
        if scope not in apikeys.granted(key):
            raise MissingScope(scope)
        apikeys.touch(session, key, now)
        return key

    return authorized


ReadKey = Annotated[ApiKey, Security(require_scope(apikeys.BOOKINGS_READ))]
WriteKey = Annotated[ApiKey, Security(require_scope(apikeys.BOOKINGS_WRITE))]
StreamKeysKey = Annotated[ApiKey, Security(require_scope(apikeys.STREAM_KEYS_READ))]
OpsKey = Annotated[ApiKey, Security(require_scope(apikeys.OPS))]
