"""A complete, ordered dump of every table, to prove that a refused command changed nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import Base
from models.db import get_sessionmaker


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with get_sessionmaker(url)() as session:
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table in Base.metadata.sorted_tables:
            rows = session.execute(select(table)).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
        return out
