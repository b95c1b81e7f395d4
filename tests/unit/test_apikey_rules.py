"""API key scopes and expiry parsing: pure decisions, no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from models import ApiKey
from worker.errors import ApiKeyError
from worker.http import apikeys

NOW = datetime(2031, 1, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["ops"], ["ops"]),
        (["bookings:read,bookings:write"], ["bookings:read", "bookings:write"]),
        (["bookings:write bookings:read", "bookings:read"], ["bookings:read", "bookings:write"]),
        ([" stream-keys:read ,"], ["stream-keys:read"]),
    ],
)
def test_scopes_are_split_sorted_and_deduplicated(given, expected) -> None:
    assert apikeys.parse_scopes(given) == expected


@pytest.mark.parametrize("given", [[], [" , "], ["admin"], ["ops,bookings:delete"]])
def test_unknown_or_missing_scopes_are_refused(given) -> None:
    with pytest.raises(ApiKeyError) as caught:
        apikeys.parse_scopes(given)
    assert caught.value.field == "scope"


@pytest.mark.parametrize(
    ("scopes", "grants", "lacks"),
    [
        ("ops", {"ops", "bookings:read", "bookings:write"}, {"stream-keys:read"}),
        ("bookings:read", {"bookings:read"}, {"bookings:write", "ops"}),
        ("bookings:write stream-keys:read", {"bookings:write", "stream-keys:read"}, {"ops"}),
    ],
)
def test_ops_implies_the_booking_scopes_but_not_stream_keys(scopes, grants, lacks) -> None:
    granted = apikeys.granted(ApiKey(scopes=scopes))
    assert grants <= granted
    assert not lacks & granted


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("90m", NOW + timedelta(minutes=90)),
        ("12h", NOW + timedelta(hours=12)),
        ("30d", NOW + timedelta(days=30)),
        ("2w", NOW + timedelta(weeks=2)),
        ("2031-02-01T00:00:00+01:00", datetime(2031, 1, 31, 23, 0, tzinfo=UTC)),
    ],
)
def test_expiry_is_a_duration_or_an_instant(given, expected) -> None:
    assert apikeys.parse_expiry(given, NOW) == expected


@pytest.mark.parametrize("given", ["0s", "2030-01-01T00:00:00Z", "tomorrow", "5y", "-1d"])
def test_bad_or_past_expiry_is_refused(given) -> None:
    with pytest.raises(ApiKeyError) as caught:
        apikeys.parse_expiry(given, NOW)
    assert caught.value.field == "expires"


def test_the_stored_digest_is_sha256_hex() -> None:
    assert apikeys.digest("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


MINE = uuid.UUID("00000000-0000-0000-0000-00000000000a")
THEIRS = uuid.UUID("00000000-0000-0000-0000-00000000000b")


@pytest.mark.parametrize(
    ("scopes", "owner", "expected"),
    [
        ("webhooks:manage", MINE, True),
        ("webhooks:manage", THEIRS, False),  # another platform's endpoint
        ("webhooks:manage", None, False),  # made by the CLI: ops only
        ("webhooks:manage bookings:read", THEIRS, False),
        ("ops", THEIRS, True),
        ("ops", None, True),
        ("bookings:read", MINE, False),
        ("bookings:write stream-keys:read", MINE, False),
    ],
)
def test_who_may_manage_an_endpoint(scopes, owner, expected) -> None:
    key = ApiKey(id=MINE, name="k", prefix="p", hash="h", scopes=scopes, created_at=NOW)
    assert apikeys.may_manage(key, owner) is expected
