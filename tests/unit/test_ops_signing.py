"""The ops page's session cookies and CSRF tokens (worker.http.pages.signing), and its list
filter (worker.http.pages.filters): pure, no I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from starlette.datastructures import QueryParams

from worker.bookings.timeparse import parse_instant
from worker.crypto import new_key
from worker.errors import BookingError
from worker.http.pages.filters import Filter
from worker.http.pages.signing import Signer
from worker.settings import Secret

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
KEY_ID = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")


def _signer(*keys: str) -> Signer:
    return Signer(tuple(Secret(k) for k in keys))


def test_a_cookie_reads_back_until_it_expires() -> None:
    signer = _signer(new_key())
    cookie = signer.session_cookie(KEY_ID, NOW + timedelta(hours=1))
    read = signer.read_session(cookie, NOW)
    assert read is not None and read.key_id == KEY_ID
    assert read.expires_at == NOW + timedelta(hours=1)
    assert signer.read_session(cookie, NOW + timedelta(hours=1)) is None
    # A new sign-in is a new session: its CSRF tokens differ.
    again = signer.read_session(signer.session_cookie(KEY_ID, NOW + timedelta(hours=1)), NOW)
    assert again is not None and again.session_id != read.session_id


@pytest.mark.parametrize("damage", ["payload", "mac", "dots", "empty", "none", "other key"])
def test_a_damaged_or_foreign_cookie_is_no_session(damage) -> None:
    signer = _signer(new_key())
    cookie = signer.session_cookie(KEY_ID, NOW + timedelta(hours=1))
    payload, mac = cookie.split(".")
    damaged = {
        "payload": f"{payload[:-2]}xx.{mac}",
        "mac": f"{payload}.{mac[:-2]}xx",
        "dots": f"{payload}.{mac}.x",
        "empty": "",
        "none": None,
        "other key": _signer(new_key()).session_cookie(KEY_ID, NOW + timedelta(hours=1)),
    }[damage]
    assert signer.read_session(damaged, NOW) is None


def test_rotation_keeps_sessions_signed_with_an_older_key() -> None:
    old, new = new_key(), new_key()
    cookie = _signer(old).session_cookie(KEY_ID, NOW + timedelta(hours=1))
    assert _signer(new, old).read_session(cookie, NOW) is not None
    assert _signer(new).read_session(cookie, NOW) is None  # the old key dropped: signed out


def test_csrf_tokens_are_bound_to_the_session_and_the_purpose() -> None:
    signer = _signer(new_key())
    token = signer.csrf_token("session-a")
    assert signer.csrf_ok("session-a", token)
    assert not signer.csrf_ok("session-b", token)
    assert not signer.csrf_ok("session-a", None) and not signer.csrf_ok("session-a", "")
    # A MAC made for another purpose (the sign-in form's) is no CSRF token.
    assert not signer.csrf_ok("session-a", signer.sign("sign-in", "session-a"))


def test_the_signer_shows_no_secret() -> None:
    key = new_key()
    assert key not in repr(_signer(key)) and key not in str(_signer(key))


def test_a_filter_goes_to_a_query_string_and_back() -> None:
    params = QueryParams(
        "state=failed&state=missed&problem=not_live&from=2031-01-01T00:00:00Z&to="
        "&meeting_id=%200f8fad5b-d9cb-469f-a165-70867728950e&q=evt+1"
    )
    read = Filter.read(params)
    assert read == Filter(
        states=("failed", "missed"),
        problems=("not_live",),
        start="2031-01-01T00:00:00Z",
        meeting_id=str(KEY_ID),
        search="evt 1",
    )
    assert Filter.read(QueryParams(read.query())) == read
    assert "cursor=abc" in read.query(cursor="abc")
    listed = read.listing()
    assert listed["start"] == datetime(2031, 1, 1, tzinfo=UTC) and listed["end"] is None


@pytest.mark.parametrize("value", ["2031-01-01 10:00", "2031-01-01", "soon"])
def test_the_filter_takes_instants_with_an_offset_only_as_the_cli_does(value) -> None:
    assert Filter(start="2031-01-01T11:00:00+01:00").listing()["start"] == datetime(
        2031, 1, 1, 10, tzinfo=UTC
    )
    with pytest.raises(BookingError) as refused:
        Filter(end=value).listing()
    assert refused.value.field == "to"
    with pytest.raises(BookingError) as in_listing:  # what `livestreams list --to` says
        parse_instant(value, None, "to")
    assert in_listing.value.problem == refused.value.problem


@pytest.mark.parametrize(
    ("states", "narrowed"),
    [
        ((), ("scheduled", "retrying")),
        (("scheduled", "failed"), ("scheduled",)),
        (("failed",), None),
    ],
)
def test_a_bulk_action_narrows_the_filter_to_the_states_it_can_change(states, narrowed):
    result = Filter(states=states).only("scheduled", "retrying")
    assert (None if result is None else result.states) == narrowed
