"""Every error the product raises, grouped by what the caller does next.

    LivestreamsError
    ├── SettingsError        a setting is missing or malformed: fix the environment, restart
    ├── InputError           bad input from a caller, naming the field: nothing was stored or
    │   │                    changed (exit 2, HTTP 4xx)
    │   ├── BookingError     a booking request was refused
    │   │   ├── BookingConflict  the input disagrees with what is stored (same ref, other fields)
    │   │   │   └── CapacityExceeded  a strict booking would put starts past the token's budget
    │   │   └── BookingNotFound  no booking with that id or reference
    │   ├── ApiKeyError      an API key request was refused (name, scope, expiry)
    │   │   └── ApiKeyNotFound   no API key with that name or id
    │   └── WebhookEndpointError  a webhook endpoint request was refused (url, event types)
    │       ├── UnsafeWebhookURL      the URL leads to a loopback, private or metadata address
    │       └── WebhookEndpointNotFound  no endpoint (or delivery) with that id
    ├── AuthError            the HTTP app refused the presented API key; nothing was done
    │   ├── NotAuthenticated no key, or an unknown, expired or revoked one (HTTP 401)
    │   └── MissingScope     the key is good but lacks the endpoint's scope (HTTP 403)
    ├── WebhookError         a provider webhook delivery was not taken in; nothing was stored
    │   ├── BadSignature     its rtk-signature is missing or does not hold (HTTP 401)
    │   ├── BadDelivery      signed, but not a delivery we can read, naming the field (HTTP 400)
    │   └── WebhookKeyUnavailable  the signing key cannot be had: the provider retries (HTTP 503)
    ├── SecretKeyError       the stream-key cipher is missing or cannot decrypt: fix the key
    ├── NotDueYet            a start ran before its instant (a clock ahead): run it again later
    ├── ProcessExitedError   a celery process of the demo (or a test) exited: read its log
    └── UpstreamError        the RealtimeKit API did not start a livestream
        ├── RetryableError   nothing was created: try again later (connect error, 408, 425, 429)
        ├── AmbiguousError   something may have been created: reconcile before trying again
        └── FinalError       the API refused for good (400, 401, 403, 404, 422, other 4xx)

The message of each error is safe to log and to show: no API token, API key or stream key ever
goes into one (the client builds messages from upstream error text, never from request headers).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn


class LivestreamsError(Exception):
    """Base class of every error raised by livestream-scheduler."""


class SettingsError(LivestreamsError):
    """A setting from the environment is missing or malformed."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


class InputError(LivestreamsError):
    """A caller's input was refused; ``field`` names what to fix. Nothing was stored or changed."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class BookingError(InputError):
    """A booking request was refused; nothing was stored or changed."""


class BookingConflict(BookingError):
    """The request disagrees with a booking already stored.

    ``fields`` names the stored fields that differ, when that is what the conflict is about.
    """

    def __init__(self, field: str, problem: str, *, fields: tuple[str, ...] = ()) -> None:
        self.fields = fields
        super().__init__(field, problem)


class CapacityExceeded(BookingConflict):
    """Asked to be strict, a booking would make starts late or missed on the token's budget
    (worker.capacity); nothing was stored. ``lines`` names each instant at risk."""

    def __init__(self, lines: tuple[str, ...]) -> None:
        self.lines = lines
        super().__init__(
            "strict", "the token's budget cannot start these on time: " + "; ".join(lines)
        )


class BookingNotFound(BookingError):
    """No booking matches the id or external reference given."""


class ApiKeyError(InputError):
    """An API key could not be created or revoked as asked; nothing was stored or changed."""


class ApiKeyNotFound(ApiKeyError):
    """No API key has that name or id."""


class WebhookEndpointError(InputError):
    """A webhook endpoint could not be registered or changed as asked; nothing was changed."""


class UnsafeWebhookURL(WebhookEndpointError):
    """The URL is not http(s), or its host resolves to an address we never send to."""


class WebhookEndpointNotFound(WebhookEndpointError):
    """No webhook endpoint (or delivery) has that id."""


class AuthError(LivestreamsError):
    """The HTTP app refused a request's API key. The message never contains the key."""


class NotAuthenticated(AuthError):
    """No API key was presented, or it is unknown, expired or revoked."""


class MissingScope(AuthError):
    """The API key is valid but does not grant the scope the endpoint needs."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__(f"this API key lacks the scope {scope!r}")


class WebhookError(LivestreamsError):
    """A provider webhook delivery was refused; nothing was stored. The message never holds
    any of its payload (which carries the stream key in the clear)."""


class BadSignature(WebhookError):
    """The delivery's ``rtk-signature`` is missing, malformed or not the provider's."""


class BadDelivery(WebhookError):
    """The signed body is not a delivery we can read; ``field`` names what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class WebhookKeyUnavailable(WebhookError):
    """The provider's signing key is neither configured nor fetchable just now."""


class SecretKeyError(LivestreamsError):
    """The stream-key cipher is not configured, or no configured key decrypts a value."""


class ProcessExitedError(LivestreamsError):
    """A celery process started by ``worker.dev.processes`` exited while it should have run."""

    def __init__(self, name: str, returncode: int, log: Path, tail: str) -> None:
        self.name = name
        self.returncode = returncode
        self.log = log
        super().__init__(f"{name} exited early (code {returncode}; log {log}):\n{tail}")


class NotDueYet(LivestreamsError):
    """A start task ran before its booking was due by the database's clock; nothing was done.

    ``seconds`` is how long until it is due: the task runs again then.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"not due for another {seconds:.3f} s")


class UpstreamError(LivestreamsError):
    """The RealtimeKit API call did not return a started livestream.

    ``status`` is the HTTP status (None when no response came), ``code`` and ``upstream_message``
    come from the error envelope, ``ray_id`` from the ``cf-ray`` header, ``duration`` is seconds.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        upstream_message: str | None = None,
        ray_id: str | None = None,
        duration: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.upstream_message = upstream_message
        self.ray_id = ray_id
        self.duration = duration
        super().__init__(message)


class RetryableError(UpstreamError):
    """Nothing was created upstream; the same call may be sent again after ``retry_after``.

    ``pauses_token``: the token's rate limit was hit, so every caller of it must wait.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        pauses_token: bool = False,
        **kw: object,
    ) -> None:
        self.retry_after = retry_after
        self.pauses_token = pauses_token
        super().__init__(message, **kw)  # type: ignore[arg-type]


class AmbiguousError(UpstreamError):
    """The request may have reached the API: ask for the active livestream before resending."""


class FinalError(UpstreamError):
    """The API refused the request for good; sending it again cannot help."""


def exit_refusing(exc: LivestreamsError) -> NoReturn:
    """Stop a process that could not do its work (a worker, beat): one line on stderr naming
    why, exit code 2. SystemExit, because Celery's signal dispatch swallows an Exception."""
    print(f"livestreams: error: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None
