"""What a text field from a caller may hold: no control characters, nothing unstorable.

PostgreSQL refuses NUL in text (an input error became a 503 "database unavailable"), a lone
surrogate has no UTF-8 encoding (a 500), and the other C0/C1 controls and DEL are never part
of a name, a time, a URL or a reason but can split a log line or hide text on a page.
"""

from __future__ import annotations

import re

from worker.errors import InputError

_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
PROBLEM = "must not contain control characters (NUL, newline, tab, ...)"


class ControlCharacters(InputError):
    """A path, query or form field holds a control character; nothing was done."""


def clean(value: str) -> bool:
    """Whether ``value`` holds no control character and no lone surrogate. Pure."""
    return _UNSTORABLE.search(value) is None


def check(field: str, value: object, error: type[InputError] = InputError) -> None:
    """Raise ``error`` naming ``field`` if ``value`` (a string, or strings in a list) is not
    :func:`clean`."""
    values = value if isinstance(value, list | tuple) else [value]
    if any(isinstance(v, str) and not clean(v) for v in values):
        raise error(field, PROBLEM)
