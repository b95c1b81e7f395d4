"""Bad input, fuzzed: bookings through the Python API and the CLI.

Each generated booking is judged by an oracle written from the documented rules (docs/DESIGN.md
"Data", the contract's name pattern, the CLI's help), not from the product's code:
- every field the oracle calls valid, and no other, may be accepted;
- a refusal is a ``BookingError`` (exit code 2 on the CLI) whose one-line message names a
  field the oracle found wrong;
- an accepted booking stores exactly what was asked, and a refused one changes nothing.

The database tests run on SQLite and PostgreSQL (the ``db_url`` parametrisation of ``env``);
examples share one database, so repeated external refs are exercised too.
"""

from __future__ import annotations

import json
import string
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select

from models import ScheduledStream
from models.db import get_sessionmaker
from tests.conftest import examples
from tests.dbdump import dump
from worker.bookings import booking
from worker.bookings.timeparse import EARLIEST, LATEST
from worker.cli import cli
from worker.errors import BookingConflict, BookingError
from worker.settings import Settings, Upstream

DEFAULT_ACCOUNT, DEFAULT_APP = "acct-test", "app-test"  # what the env fixture sets
DEFAULT_WINDOW = 900.0
ALLOWED = frozenset(string.ascii_letters + string.digits + "-_")
ZONES = sorted(available_timezones())  # the product refuses some of these: see _zone
ODD_ZONES = [
    "", " UTC", "UTC ", "/UTC", "../UTC", "Etc/../UTC", "Europe//Berlin", "Moon/Base", "America",
    "zone.tab", "posixrules", "localtime", "right/UTC", "posix/Europe/Berlin", "Etc/GMT+14",
    "a" * 300, "UTC\x00",
]  # fmt: skip
# Every booking field, and the CLI option that carries it.
OPTION = {
    "meeting_id": "--meeting-id", "at": "--at", "tz": "--tz", "account_id": "--account-id",
    "app_id": "--app-id", "name": "--name", "width": "--width", "height": "--height",
    "external_ref": "--ref", "start_window": "--start-window",
}  # fmt: skip
FAST = hsettings(
    max_examples=examples(200),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SLOWER = hsettings(FAST, max_examples=examples(100))


# -- the oracle ------------------------------------------------------------------------------
@dataclass
class Expected:
    """What the rules say about one input: the wrong fields, else the values to store."""

    wrong: set[str] = field(default_factory=set)
    values: dict[str, Any] = field(default_factory=dict)
    # Fields allowed to be blamed for an instant or deadline past year 9999 (either is fair).
    overflow: set[str] = field(default_factory=set)


def _ident_ok(value: str) -> bool:
    return 0 < len(value) <= 32 and set(value) <= ALLOWED


def _ref_ok(ref: str) -> bool:
    return 0 < len(ref) <= 200 and ref.isprintable() and ref == ref.strip()


# Files of the zone database that are no IANA zone: localtime means another zone on each host.
NOT_ZONES = {"localtime", "posixrules"}


def _zone(name: str) -> ZoneInfo | None:
    if name in NOT_ZONES or name.startswith(("posix/", "right/")) or name not in ZONES:
        return None
    try:
        return ZoneInfo(name)
    except Exception:  # any way of not being a zone is a refusal of "tz"
        return None


def _instant(at: object, tz: str | None, exp: Expected) -> datetime | None:
    """The UTC instant ``at`` means, or None after noting what is wrong."""
    zone = None if tz is None else _zone(tz)
    if tz is not None and zone is None:
        exp.wrong.add("tz")
    if isinstance(at, datetime):
        parsed = at
    elif isinstance(at, str):
        if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in at):
            exp.wrong.add("at")  # control characters, even those str.strip() would drop
            return None
        text = at.strip()
        if text[-1:] in ("z", "Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            exp.wrong.add("at")
            return None
    else:
        exp.wrong.add("at")
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        if tz is None:
            exp.wrong.add("at")  # a wall time needs a zone
            return None
        if zone is None:
            return None
        early, late = parsed.replace(tzinfo=zone, fold=0), parsed.replace(tzinfo=zone, fold=1)
        try:
            if early.utcoffset() != late.utcoffset():
                exp.wrong.add("at")  # PEP 495: a gap or a repeated hour, never guessed at
                return None
            parsed = early
        except OverflowError:
            exp.wrong.add("at")
            return None
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError:
        exp.wrong.add("at")
        return None
    if not EARLIEST <= instant < LATEST:
        exp.wrong.add("at")  # out of the range the product books
        return None
    return instant


def expect(fields: dict[str, Any], *, now: datetime | None) -> Expected:
    """The oracle. ``now``: also judge past instants and deadlines (what schedule does)."""
    exp = Expected()
    meeting = fields.get("meeting_id")
    try:
        exp.values["meeting_id"] = (
            meeting if isinstance(meeting, uuid.UUID) else uuid.UUID(str(meeting).strip())
        )
    except ValueError:
        exp.wrong.add("meeting_id")
    for key, default in (("account_id", DEFAULT_ACCOUNT), ("app_id", DEFAULT_APP)):
        value = fields.get(key) or default
        if _ident_ok(value):
            exp.values[key] = value
        else:
            exp.wrong.add(key)
    name = fields.get("name")
    if name is None or (len(name) <= 200 and set(name) <= ALLOWED):
        exp.values["name"] = name
    else:
        exp.wrong.add("name")
    for key, column in (("width", "video_width"), ("height", "video_height")):
        side = fields.get(key)
        if side is None or (type(side) is int and 1 <= side <= 8192):
            exp.values[column] = side
        else:
            exp.wrong.add(key)
    ref = fields.get("external_ref")
    if ref is None or _ref_ok(ref):
        exp.values["external_ref"] = ref
    else:
        exp.wrong.add("external_ref")
    window = fields.get("start_window")
    if window is None:
        window = DEFAULT_WINDOW
    elif not (type(window) in (int, float) and 0 < window <= 86400):
        exp.wrong.add("start_window")
        window = None
    tz = fields.get("tz")
    instant = _instant(fields.get("at"), tz, exp)
    if instant is not None:
        exp.values.update(scheduled_at=instant, due_at=instant, timezone=tz or "UTC")
        if now is not None and instant <= now:
            exp.wrong.add("at")
        if window is not None:
            try:
                exp.values["start_deadline"] = instant + timedelta(seconds=window)
            except OverflowError:
                exp.overflow = {"at", "start_window"}
    return exp


def assert_clear(err: BookingError, exp: Expected) -> None:
    message = str(err)
    assert err.field in exp.wrong | exp.overflow, (err.field, exp.wrong, message)
    assert message == f"{err.field}: {err.problem}" and err.problem.strip(), message
    assert "\n" not in message and "\r" not in message, f"not one line: {message!r}"


# -- strategies ----------------------------------------------------------------------------
def _uuid_spellings(u: uuid.UUID) -> st.SearchStrategy[Any]:
    return st.sampled_from(
        [u, str(u), str(u).upper(), u.hex, f"{{{u}}}", f"urn:uuid:{u}", f" {u} ", str(u)[:-1]]
    )


OFFSETS = st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m)))
DATETIMES = st.datetimes()
NEAR = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))
AWARE = st.one_of(
    DATETIMES.flatmap(lambda d: OFFSETS.map(lambda z: d.replace(tzinfo=z))),
    NEAR.flatmap(
        lambda d: st.sampled_from([UTC, *map(ZoneInfo, ZONES[:40:3])]).map(
            lambda z: d.replace(tzinfo=z)
        )
    ),
    NEAR.map(lambda d: d.replace(tzinfo=UTC)),
)
WALL = st.one_of(DATETIMES, NEAR)
TEXT = st.text(max_size=40)


def _spell(dt: datetime) -> st.SearchStrategy[str]:
    iso = dt.isoformat()
    return st.sampled_from(
        [iso, iso.replace("T", " "), iso.replace("+00:00", "Z"), iso.replace("+00:00", "z"),
         f" {iso}\n", dt.strftime("%Y-%m-%d %H:%M"), dt.strftime("%d.%m.%Y %H:%M")]
    )  # fmt: skip


AT = st.one_of(AWARE, WALL, AWARE.flatmap(_spell), WALL.flatmap(_spell), TEXT)
TZ = st.one_of(st.none(), st.sampled_from(ZONES), st.sampled_from(ODD_ZONES), TEXT)
NAME = st.one_of(
    st.none(),
    st.text(alphabet=sorted(ALLOWED), max_size=30),
    st.text(alphabet=sorted(ALLOWED), min_size=198, max_size=202),
    TEXT,
)
IDENT = st.one_of(
    st.none(), st.just(""), st.text(alphabet=sorted(ALLOWED), min_size=1, max_size=34), TEXT
)
SIDE = st.one_of(
    st.none(),
    st.integers(-2, 9000),
    st.sampled_from([1, 8192, 8193, 0, -1, 2**63, True, False, 1280.0, "1280"]),
)
REF = st.one_of(st.none(), TEXT, st.text(min_size=199, max_size=202))
WINDOW = st.one_of(
    st.none(),
    st.floats(),
    st.integers(-5, 90000),
    st.sampled_from([86400, 86400.0001, 0, 0.0, 1e-9, True, "900"]),
)


@st.composite
def bookings(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "meeting_id": draw(st.one_of(st.uuids().flatmap(_uuid_spellings), TEXT, st.none())),
        "at": draw(AT),
        "tz": draw(TZ),
        "account_id": draw(IDENT),
        "app_id": draw(IDENT),
        "name": draw(NAME),
        "width": draw(SIDE),
        "height": draw(SIDE),
        "external_ref": draw(REF),
        "start_window": draw(WINDOW),
    }
    return fields


# Found while writing these tests; kept as fixed examples so they are always tried.
OVERFLOW_OFFSET = {"at": datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))}
OVERFLOW_WALL = {"at": "0001-01-01 05:00", "tz": "Asia/Tokyo"}
OVERFLOW_DEADLINE = {"at": "9999-12-30T23:59:00Z", "start_window": 86400}
NEWLINE_AT = {"at": "\n2031-01-01T10:00\n"}
TZ_DIRECTORY = {"at": "2031-01-01T10:00:00Z", "tz": "America"}  # OSError from tzdata
TZ_TOO_LONG = {"at": "2031-01-01T10:00:00Z", "tz": "a" * 300}


def _with_meeting(extra: dict[str, Any]) -> dict[str, Any]:
    fields = dict.fromkeys(OPTION, None)
    return {**fields, "meeting_id": str(uuid.UUID(int=1)), **extra}


# -- validate: no database -------------------------------------------------------------------
@FAST
@given(fields=bookings())
@example(fields=_with_meeting(OVERFLOW_OFFSET))
@example(fields=_with_meeting(OVERFLOW_WALL))
@example(fields=_with_meeting(NEWLINE_AT))
@example(fields=_with_meeting(TZ_DIRECTORY))
@example(fields=_with_meeting(TZ_TOO_LONG))
def test_validate_refuses_with_the_field_or_accepts_exactly(fields: dict[str, Any]) -> None:
    settings = Settings(upstream=Upstream(account_id=DEFAULT_ACCOUNT, app_id=DEFAULT_APP))
    exp = expect(fields, now=None)
    try:
        request = booking.validate(settings, **fields)
    except BookingError as err:
        assert_clear(err, exp)
        return
    assert not exp.wrong, f"accepted although {sorted(exp.wrong)} are wrong: {request}"
    for key, value in exp.values.items():
        if key in ("due_at", "start_deadline"):
            continue
        assert getattr(request, key) == value, key
    window = DEFAULT_WINDOW if fields["start_window"] is None else fields["start_window"]
    assert request.start_window == float(window)


# -- schedule: stored exactly, or nothing changed --------------------------------------------
def _stored(url: str, stream_id: uuid.UUID) -> ScheduledStream:
    with get_sessionmaker(url)() as s:
        row = s.get(ScheduledStream, stream_id)
        assert row is not None
        return row


def _ref_taken(url: str, ref: object) -> bool:
    if not isinstance(ref, str) or not _ref_ok(ref):
        return False  # never stored, and PostgreSQL cannot even compare a NUL
    with get_sessionmaker(url)() as s:
        query = select(ScheduledStream.id).where(ScheduledStream.external_ref == ref)
        return s.scalar(query) is not None


def _assert_row(row: ScheduledStream, exp: Expected) -> None:
    for key, value in exp.values.items():
        assert getattr(row, key) == value, (key, getattr(row, key), value)
    assert row.state == "scheduled" and row.attempts == 0
    assert row.livestream_id is None and row.stream_key_ciphertext is None


@pytest.mark.postgres
@SLOWER
@given(fields=bookings())
@example(fields=_with_meeting(OVERFLOW_DEADLINE))
@example(fields=_with_meeting(OVERFLOW_OFFSET))
def test_schedule_stores_exactly_or_changes_nothing(settings, fields: dict[str, Any]) -> None:
    url = settings.database_url
    taken = _ref_taken(url, fields["external_ref"])
    before = dump(url)
    exp = expect(fields, now=datetime.now(UTC))
    try:
        with get_sessionmaker(url).begin() as session:
            result = booking.schedule(session, settings, **fields)
            stream_id, created = result.stream.id, result.created
    except BookingError as err:
        if taken and isinstance(err, BookingConflict):
            exp.wrong.add("external_ref")  # same ref, other fields: a conflict, not a booking
        assert_clear(err, exp)
        assert dump(url) == before, "a refused booking changed the database"
        return
    assert not exp.wrong - ({"at"} if taken else set()), (
        f"accepted although {sorted(exp.wrong)} are wrong"
    )
    if taken:
        assert not created and dump(url) == before  # the caller's retry: the stored booking
        return
    assert created
    _assert_row(_stored(url, stream_id), exp)


# -- the CLI ---------------------------------------------------------------------------------
CLI_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)


@st.composite
def cli_bookings(draw: st.DrawFn) -> dict[str, str]:
    """Every option as the string a shell would pass; a missing key is a missing option."""
    fields = draw(bookings())
    out: dict[str, str] = {}
    for key, value in fields.items():
        if value is None and key not in ("meeting_id", "at"):
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        if key in ("width", "height", "start_window") and draw(st.booleans()):
            value = draw(CLI_TEXT)  # what click has to convert
        out[key] = "" if value is None else str(value)
    return out


def _cli_expect(args: dict[str, str]) -> Expected:
    fields: dict[str, Any] = dict(args)
    wrong: set[str] = set()
    for key, convert in (("width", int), ("height", int), ("start_window", float)):
        if key in fields:
            try:
                fields[key] = convert(fields[key])
            except ValueError:
                wrong.add(key)
                fields[key] = None
    exp = expect(fields, now=datetime.now(UTC))
    exp.wrong |= wrong
    return exp


@pytest.mark.postgres
@SLOWER
@given(args=cli_bookings())
@example(args={"meeting_id": str(uuid.UUID(int=2)), "at": "9999-12-30T23:59:00Z"})
@example(args={"meeting_id": str(uuid.UUID(int=2)), "at": "0001-01-01T00:30:00+01:00"})
@example(args={"meeting_id": str(uuid.UUID(int=2)), "at": "2031-01-01T10:00Z", "tz": "America"})
def test_cli_schedule_exits_2_naming_the_field_or_stores_exactly(
    settings, env, args: dict[str, str]
) -> None:
    url = settings.database_url
    taken = _ref_taken(url, args.get("external_ref"))
    before = dump(url)
    exp = _cli_expect(args)
    argv = ["schedule", "--json", *(f"{OPTION[k]}={v}" for k, v in args.items())]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code in (0, 2), (
        f"exit {result.exit_code} for {argv!r}: {result.exception!r}\n{result.output}"
    )
    if result.exit_code == 2:
        names = exp.wrong | exp.overflow | ({"external_ref"} if taken else set())
        said = result.stderr
        assert any(n in said or OPTION[n] in said for n in names), (names, said)
        if "livestreams: error:" in said:  # ours, not click's usage error: one line
            assert len(said.strip().splitlines()) == 1, said
        assert dump(url) == before, "a refused booking changed the database"
        return
    out = json.loads(result.stdout)
    assert not exp.wrong - ({"at"} if taken else set()), (
        f"accepted although {sorted(exp.wrong)} are wrong"
    )
    if taken:
        assert out["created"] is False and dump(url) == before
        return
    assert out["created"] is True
    _assert_row(_stored(url, uuid.UUID(out["id"])), exp)
