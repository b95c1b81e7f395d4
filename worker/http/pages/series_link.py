"""A booking's series, as its ops page names it (apart from the series views, which read the
booking pages' not-found answer)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models import ScheduledStream, Series


def series_of(session: Session, stream: ScheduledStream) -> dict[str, Any] | None:
    """A booking's series, for its page: ref, link, its date, and whether it was detached."""
    if stream.series_id is None:
        return None
    series = session.get(Series, stream.series_id)
    if series is None:
        return None
    return {
        "ref": series.ref,
        "href": f"/ops/series/{series.id}",
        "date": None if stream.series_date is None else stream.series_date.isoformat(),
        "detached": bool(stream.detached),
    }
