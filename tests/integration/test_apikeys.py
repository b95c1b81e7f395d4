"""API keys in the database: created once, found by prefix, refused when revoked or expired."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from models import ApiKey
from models.db import get_sessionmaker
from worker.errors import ApiKeyError, ApiKeyNotFound, NotAuthenticated
from worker.http import apikeys


def _create(url: str, name: str = "platform", scopes=("bookings:read",), expires=None):
    with get_sessionmaker(url).begin() as session:
        row, key = apikeys.create(session, name=name, scopes=scopes, expires=expires)
        return row.id, key


def test_a_created_key_authenticates_and_only_its_hash_is_stored(settings) -> None:
    key_id, key = _create(settings.database_url)
    assert key.startswith("lsk_")
    with get_sessionmaker(settings.database_url).begin() as session:
        row = apikeys.authenticate(session, key)
        assert row.id == key_id
        assert key not in (row.hash, row.prefix, row.scopes)
        assert row.hash == apikeys.digest(key)
        assert row.last_used_at is None
        apikeys.touch(session, row)
        assert row.last_used_at is not None


@pytest.mark.parametrize(
    "presented",
    [None, "", "Bearer x", "lsk_000000000000_" + "A" * 43, "lsk_short_secret"],
)
def test_missing_malformed_and_unknown_keys_are_refused(settings, presented) -> None:
    _create(settings.database_url)
    with get_sessionmaker(settings.database_url)() as session, pytest.raises(NotAuthenticated):
        apikeys.authenticate(session, presented)


def test_a_key_with_a_wrong_secret_is_refused(settings) -> None:
    _, key = _create(settings.database_url)
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    with get_sessionmaker(settings.database_url)() as session, pytest.raises(NotAuthenticated):
        apikeys.authenticate(session, tampered)


def test_revoked_and_expired_keys_are_refused(settings) -> None:
    url = settings.database_url
    _, revoked = _create(url, "gone")
    expired_id, expired = _create(url, "old", expires="1h")
    with get_sessionmaker(url).begin() as session:
        assert apikeys.revoke(session, "gone").revoked_at is not None
        row = session.get(ApiKey, expired_id)
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == expired_id)
            .values(expires_at=row.created_at - timedelta(seconds=1))
        )
    with get_sessionmaker(url)() as session:
        with pytest.raises(NotAuthenticated, match="revoked"):
            apikeys.authenticate(session, revoked)
        with pytest.raises(NotAuthenticated, match="expired"):
            apikeys.authenticate(session, expired)


def test_names_are_unique_and_revoke_finds_by_name_or_id(settings) -> None:
    url = settings.database_url
    key_id, _ = _create(url)
    with get_sessionmaker(url).begin() as session, pytest.raises(ApiKeyError, match="exists"):
        apikeys.create(session, name="platform", scopes=["ops"])
    with get_sessionmaker(url).begin() as session:
        first = apikeys.revoke(session, str(key_id)).revoked_at
    with get_sessionmaker(url).begin() as session:
        assert apikeys.revoke(session, "platform").revoked_at == first
        with pytest.raises(ApiKeyNotFound):
            apikeys.revoke(session, "nobody")
