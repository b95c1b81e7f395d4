"""API keys for the HTTP app: create (the key is shown once), list, revoke, authenticate.

A key reads ``lsk_<prefix>_<secret>``: the prefix (12 hex digits) is not secret and finds the
row; only the sha256 of the whole key is stored. The secret is 256 random bits, so a fast hash
is enough: a slow password hash (bcrypt, argon2) protects guessable passwords, and nobody can
guess 2**256 values, fast hash or not.

Scopes (what a key may do):

    bookings:read     list and show bookings (stream keys masked)
    bookings:write    book, cancel, reschedule, retry
    stream-keys:read  reveal a booking's stream key in the clear
    webhooks:manage   register outbound webhook endpoints (/v1/webhook-endpoints), and manage
                      the ones this key registered; registering also needs bookings:read,
                      since every event carries a booking's fields
    ops               /v1/status, and everything bookings:read, bookings:write and
                      webhooks:manage allow, for every endpoint whoever registered it

``ops`` does not imply ``stream-keys:read``: revealing stream keys is granted on its own, so an
ops dashboard key that leaks cannot be used to hijack a broadcast.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import ApiKey
from models.db import db_now
from worker.bookings.timeparse import LATEST, parse_instant
from worker.errors import ApiKeyError, ApiKeyNotFound, InputError, NotAuthenticated

BOOKINGS_READ = "bookings:read"
BOOKINGS_WRITE = "bookings:write"
STREAM_KEYS_READ = "stream-keys:read"
WEBHOOKS_MANAGE = "webhooks:manage"
OPS = "ops"
SCOPES = (BOOKINGS_READ, BOOKINGS_WRITE, STREAM_KEYS_READ, WEBHOOKS_MANAGE, OPS)
IMPLIED = {OPS: frozenset({OPS, BOOKINGS_READ, BOOKINGS_WRITE, WEBHOOKS_MANAGE})}

KEY_PREFIX = "lsk"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_KEY_PATTERN = re.compile(r"lsk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_DURATION = re.compile(r"(\d{1,6})([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# last_used_at is written at most this often per key, so reads do not each become a write.
TOUCH_EVERY = timedelta(minutes=1)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(values: Iterable[str]) -> list[str]:
    """Scope names given one by one or space- or comma-separated; sorted, without repeats."""
    names = {part for value in values for part in re.split(r"[\s,]+", value) if part}
    unknown = sorted(names - set(SCOPES))
    if unknown:
        raise ApiKeyError("scope", f"unknown {', '.join(unknown)}; one of {', '.join(SCOPES)}")
    if not names:
        raise ApiKeyError("scope", f"give at least one of {', '.join(SCOPES)}")
    return sorted(names)


def granted(key: ApiKey) -> frozenset[str]:
    """Every scope the key grants, implied ones included."""
    out: set[str] = set()
    for name in key.scopes.split():
        out |= IMPLIED.get(name, {name})
    return frozenset(out)


def may_manage(key: ApiKey, owner: uuid.UUID | None) -> bool:
    """Whether ``key`` may see and change an endpoint registered by the key ``owner`` (None:
    by the CLI, or before endpoints had owners). Pure: ``ops`` manages every endpoint, a
    ``webhooks:manage`` key its own only, so one platform's key cannot disable, rotate, read
    or replay another's."""
    scopes = granted(key)
    if OPS in scopes:
        return True
    return WEBHOOKS_MANAGE in scopes and owner is not None and owner == key.id


def parse_expiry(value: str, now: datetime) -> datetime:
    """An ISO 8601 instant with an offset, or a duration from now: 90m, 12h, 30d, 2w."""
    text = value.strip()
    match = _DURATION.fullmatch(text)
    if match:
        try:
            expires = now + timedelta(**{_UNITS[match[2]]: int(match[1])})
        except OverflowError:  # 999999w: past year 9999, a traceback before
            expires = LATEST
        if expires >= LATEST:
            raise ApiKeyError("expires", f"{text} is too far: before {LATEST.year} at most")
    else:
        try:
            expires = parse_instant(text, None, "expires")[0]
        except InputError as exc:
            raise ApiKeyError("expires", f"{exc.problem} (or a duration like 30d)") from None
    if expires <= now:
        raise ApiKeyError("expires", f"{expires.isoformat()} is in the past")
    return expires


def create(
    session: Session, *, name: str, scopes: Iterable[str], expires: str | None = None
) -> tuple[ApiKey, str]:
    """Store a new key and return it with the key itself, which is never available again."""
    if not NAME_PATTERN.fullmatch(name) or _as_uuid(name) is not None:
        raise ApiKeyError(
            "name", "must be 1-100 letters, digits, '.', '-' or '_', and not look like an id"
        )
    wanted = parse_scopes(scopes)
    now = db_now(session)
    expires_at = None if expires is None else parse_expiry(expires, now)
    if session.scalars(select(ApiKey).where(ApiKey.name == name)).first() is not None:
        raise ApiKeyError("name", f"an API key named {name!r} exists already")
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        id=uuid.uuid4(),
        name=name,
        prefix=prefix,
        hash=digest(key),
        scopes=" ".join(wanted),
        created_at=now,
        expires_at=expires_at,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # the same name created concurrently (a prefix clash is 2**-48)
        raise ApiKeyError("name", f"an API key named {name!r} exists already") from None
    return row, key


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.name)))


def find(session: Session, name_or_id: str) -> ApiKey:
    ident = _as_uuid(name_or_id)
    column = ApiKey.name if ident is None else ApiKey.id
    row = session.scalars(select(ApiKey).where(column == (ident or name_or_id))).first()
    if row is None:
        raise ApiKeyNotFound("name", f"no API key named or with id {name_or_id!r}")
    return row


def revoke(session: Session, name_or_id: str) -> ApiKey:
    """Revoke a key for good; revoking it again keeps the first revocation time."""
    row = find(session, name_or_id)
    if row.revoked_at is None:
        row.revoked_at = db_now(session)
        session.flush()
    return row


def authenticate(session: Session, presented: str | None, now: datetime | None = None) -> ApiKey:
    """The stored key matching ``presented``, if it is neither expired nor revoked at ``now``
    (the database's clock when not given).

    Raises NotAuthenticated otherwise; its message never contains what was presented.
    """
    match = _KEY_PATTERN.fullmatch(presented or "")
    if match is None:
        raise NotAuthenticated("no API key, or not one of ours (lsk_...)")
    row = session.scalars(select(ApiKey).where(ApiKey.prefix == match[1])).first()
    # Compared in constant time, so response timing tells nothing about the hash.
    if row is None or not hmac.compare_digest(row.hash, digest(match[0])):
        raise NotAuthenticated("unknown API key")
    now = now or db_now(session)
    if row.revoked_at is not None:
        raise NotAuthenticated("this API key was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise NotAuthenticated("this API key has expired")
    return row


def touch(session: Session, key: ApiKey, now: datetime | None = None) -> None:
    """Note that ``key`` was used (at most once per TOUCH_EVERY)."""
    now = now or db_now(session)
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_EVERY:
        key.last_used_at = now
        session.flush()


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None
