"""The list's filter, read from a query string (or a form) and written back into links."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData, QueryParams

from models import Problem, StreamState
from worker.bookings.timeparse import parse_instant
from worker.errors import BookingError


@dataclass(frozen=True)
class Filter:
    """What the list shows: any of ``states`` and of ``problems``, a start-time range (instants
    with an offset, as the CLI and the API take them), a meeting, what the search box finds
    (worker.bookings.listing.matching), and the order: the latest start first, or ``oldest``."""

    states: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    start: str = ""
    end: str = ""
    meeting_id: str = ""
    search: str = ""
    order: str = ""

    @property
    def newest_first(self) -> bool:
        return self.order != "oldest"

    @classmethod
    def read(cls, params: QueryParams | FormData) -> Filter:
        def one(name: str) -> str:
            value = params.get(name)
            return value.strip() if isinstance(value, str) else ""

        def many(name: str) -> tuple[str, ...]:
            return tuple(v for v in params.getlist(name) if isinstance(v, str) and v)

        return cls(
            states=many("state"),
            problems=many("problem"),
            start=one("from"),
            end=one("to"),
            meeting_id=one("meeting_id"),
            search=one("q"),
            order="oldest" if one("order") == "oldest" else "",
        )

    def listing(self) -> dict[str, Any]:
        """worker.bookings.listing's keyword arguments; a bad value raises BookingError naming
        it."""
        return {
            "states": _known("state", self.states, StreamState),
            "problems": _known("problem", self.problems, Problem),
            "start": _instant(self.start, "from"),
            "end": _instant(self.end, "to"),
            "meeting_id": self.meeting_id or None,
            "search": self.search or None,
        }

    def pairs(self) -> list[tuple[str, str]]:
        out = [("state", s) for s in self.states] + [("problem", p) for p in self.problems]
        for name, value in (
            ("from", self.start),
            ("to", self.end),
            ("meeting_id", self.meeting_id),
            ("q", self.search),
            ("order", self.order),
        ):
            if value:
                out.append((name, value))
        return out

    def query(self, **extra: str) -> str:
        """The query string for this filter, plus ``extra`` (a cursor)."""
        return urlencode(self.pairs() + [(k, v) for k, v in extra.items() if v])

    def only(self, *states: str) -> Filter | None:
        """This filter narrowed to ``states`` (a bulk action applies to those alone), or None
        when it selects none of them."""
        wanted = tuple(s for s in self.states if s in states) if self.states else states
        return replace(self, states=wanted) if wanted else None


def _known(field: str, values: tuple[str, ...], kind: type[StrEnum]) -> tuple[str, ...]:
    # Checked here too, not only by worker.bookings.listing: a bulk action narrows the filter to its
    # states first, and an unknown state must be the form's error, not "0 bookings".
    known = {k.value for k in kind}
    for value in values:
        if value not in known:
            raise BookingError(field, f"unknown {field}; one of {', '.join(sorted(known))}")
    return values


def _instant(value: str, field: str) -> datetime | None:
    # No zone to read a wall time in, as for `livestreams list --from` and GET /v1/bookings:
    # a date or a time without an offset is refused, not read as UTC here and refused there.
    return parse_instant(value, None, field)[0] if value else None
