"""HTTP client for the RealtimeKit livestream API (its contract: tests/contracts/).

Every call returns a typed result or raises one ``worker.errors.UpstreamError`` subclass; the
meaning of each answer is decided by ``worker.upstream.policy``. No database and no Celery here, so
the client can be tested with ``httpx.MockTransport`` and against the fake server alone.

Results are ``Livestream`` values (defined in ``worker.upstream.responses``, re-exported here);
``Livestream.call`` is a ``CallInfo`` with status, ``cf-ray`` and duration. Reads and stop
never raise ``AmbiguousError``: resending them cannot create anything.

The API token lives only in a ``Secret`` and is added to each request by ``_BearerAuth``, so it
is never in the client's default headers, an exception message or a log record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Any, NoReturn
from urllib.parse import quote

import httpx

from worker import metrics
from worker.errors import AmbiguousError, FinalError, RetryableError, UpstreamError
from worker.settings import Secret, Settings, Timeouts
from worker.upstream.policy import Outcome, answered_as_asked, classify, classify_exception
from worker.upstream.responses import REDACTED, CallInfo, Livestream, field_text

__all__ = ["CallInfo", "Livestream", "RealtimeKitClient", "error_for"]

log = logging.getLogger(__name__)

try:
    _VERSION = version("livestream-scheduler")
except PackageNotFoundError:  # running from a source tree that was never installed
    _VERSION = "0+unknown"
USER_AGENT = f"livestream-scheduler/{_VERSION}"
MAX_BODY = 64 * 1024  # bytes of a response we read; an error page needs no more


def http_timeout(timeouts: Timeouts) -> httpx.Timeout:
    """The settings' bound of each phase of a call, as httpx takes it."""
    return httpx.Timeout(
        connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool
    )


DEFAULT_TIMEOUT = http_timeout(Timeouts())


class _BearerAuth(httpx.Auth):
    def __init__(self, token: Secret) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "_BearerAuth(Secret('**********'))"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token.get()}"
        yield request


class RealtimeKitClient:
    """One pooled HTTP client for the livestream endpoints of one API token.

    Results are ``Livestream`` values whose ``call`` holds status, ``cf-ray`` and duration;
    errors carry the same in ``status``, ``ray_id`` and ``duration``.
    """

    def __init__(
        self,
        *,
        base_url: str,
        token: Secret,
        timeout: httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        timeout = timeout or DEFAULT_TIMEOUT
        self._token = token
        # The whole call's limit: each httpx timeout bounds one wait, not the sum, so a body
        # sent a byte at a time could otherwise hold a call (and its claim) for ever.
        self.call_limit = sum(
            t or 0.0 for t in (timeout.pool, timeout.connect, timeout.write, timeout.read)
        )
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            auth=_BearerAuth(token),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            # A redirect is an answer we do not expect; following it would resend the POST.
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RealtimeKitClient:
        return cls(
            base_url=settings.upstream.base_url,
            token=settings.require_token(),
            timeout=http_timeout(settings.upstream.timeouts),
        )

    def __repr__(self) -> str:
        return f"RealtimeKitClient(base_url={str(self._http.base_url)!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RealtimeKitClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start_livestream(
        self,
        account_id: str,
        app_id: str,
        meeting_id: str,
        *,
        name: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> Livestream:
        """Start livestreaming a meeting. Not idempotent: after an ``AmbiguousError`` ask
        ``get_active_livestream`` before calling this again."""
        path = _meeting_path(account_id, app_id, meeting_id, "livestreams")
        outcome, call = self._call("start", "POST", path, start_body(name, width, height))
        if outcome.kind == "started" and outcome.livestream is not None:
            return _with_call(outcome.livestream, call)
        self._raise(outcome, call, "start")

    def get_active_livestream(
        self, account_id: str, app_id: str, meeting_id: str
    ) -> Livestream | None:
        """The meeting's active livestream, or None when the API has none (404 or empty data)."""
        path = _meeting_path(account_id, app_id, meeting_id, "active-livestream")
        outcome, call = self._call("active", "GET", path)
        if outcome.kind == "started" and outcome.livestream is not None:
            return _with_call(outcome.livestream, call)
        # 404 is how the API says "no active livestream"; a success with empty data says the
        # same. Anything else without an id is unexpected and retried, never read as "none":
        # reading it as "none" could lead to a second start.
        if outcome.status == 404 or (outcome.acknowledged and outcome.empty):
            return None
        self._raise(outcome, call, "active")

    def stop_active_livestream(self, account_id: str, app_id: str, meeting_id: str) -> None:
        """Stop the meeting's active livestream; ``FinalError`` (404) when there is none."""
        path = _meeting_path(account_id, app_id, meeting_id, "active-livestream/stop")
        outcome, call = self._call("stop", "POST", path)
        # The stop answer carries a message, not a livestream: success: true is enough.
        if outcome.acknowledged:
            return
        self._raise(outcome, call, "stop")

    def get_livestream(self, account_id: str, app_id: str, livestream_id: str) -> Livestream:
        """A livestream by its id (``data.livestream`` of GET /livestreams/{id})."""
        path = f"{_app_path(account_id, app_id)}/livestreams/{_seg(livestream_id)}"
        outcome, call = self._call("get", "GET", path)
        if outcome.kind == "started" and outcome.livestream is not None:
            return _with_call(outcome.livestream, call)
        self._raise(outcome, call, "get")

    def _call(
        self, op: str, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[Outcome, CallInfo]:
        # Only the start creates anything; a read or a stop may simply be sent again.
        idempotent = op != "start"
        began = time.monotonic()
        status: int | None = None
        ray_id: str | None = None
        headers = httpx.Headers()
        chunks: list[bytes] = []
        try:
            with self._http.stream(method, path, json=body) as response:
                status = response.status_code
                ray_id = field_text(response.headers.get("cf-ray"), 100)
                headers = response.headers
                _read_bounded(response, chunks, began + self.call_limit)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            if status is None:
                call = CallInfo(None, ray_id, time.monotonic() - began)
                outcome = classify_exception(exc, idempotent=idempotent)
                self._log(op, method, path, outcome, call)
                self._raise(outcome, call, op, cause=exc)
            # The status line came, the body broke off: the status still decides, and a cut
            # body can only make a 2xx unreadable (ambiguous), never started.
        call = CallInfo(status, ray_id, time.monotonic() - began)
        outcome = classify(
            status, b"".join(chunks), headers, now=datetime.now(UTC), idempotent=idempotent
        )
        self._log(op, method, path, outcome, call)
        return outcome, call

    def _log(self, op: str, method: str, path: str, outcome: Outcome, call: CallInfo) -> None:
        metrics.PROVIDER_REQUESTS.labels(operation=op, status=str(call.status or "error")).inc()
        metrics.PROVIDER_DURATION.labels(operation=op).observe(call.duration)
        # A call that went well is told by its run's own line; the rest say why here.
        log.log(
            logging.DEBUG if answered_as_asked(op, outcome) else logging.INFO,
            "realtimekit %s %s: %s",
            method,
            path,
            self._scrub(outcome.message),
            extra={
                "action": "realtimekit_call",
                "outcome": outcome.kind,
                "status": call.status,
                "ray_id": call.ray_id,
                "duration": round(call.duration, 4),
            },
        )

    def _raise(
        self, outcome: Outcome, call: CallInfo, what: str, cause: BaseException | None = None
    ) -> NoReturn:
        # The httpx cause is kept for tracebacks; its text names no header, so no token.
        raise error_for(outcome, call, what, scrub=self._scrub) from cause

    def _scrub(self, text: str | None) -> str | None:
        token = self._token.get()
        return text.replace(token, REDACTED) if text and token else text


def error_for(
    outcome: Outcome,
    call: CallInfo,
    what: str,
    scrub: Callable[[str | None], str | None] = lambda text: text,
) -> UpstreamError:
    """The exception that tells the caller what to do next about a call that gave ``outcome``.

    ``scrub`` takes the API token out of any text that reaches the exception.
    """
    kw: dict[str, Any] = {
        "status": call.status,
        "code": outcome.code,
        "upstream_message": scrub(outcome.upstream_message),
        "ray_id": call.ray_id,
        "duration": call.duration,
    }
    message = f"{what}: {scrub(outcome.message)}"
    if outcome.kind == "retryable":
        return RetryableError(
            message, retry_after=outcome.retry_after, pauses_token=outcome.pauses_token, **kw
        )
    if outcome.kind == "final":
        return FinalError(message, **kw)
    # ambiguous, or "started" without a livestream (cannot happen; be safe)
    return AmbiguousError(message, **kw)


def start_body(name: str | None, width: int | None, height: int | None) -> dict[str, Any]:
    """The start request body: width and height nested in ``video_config``, never top level."""
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    video: dict[str, int] = {}
    if width is not None:
        video["width"] = width
    if height is not None:
        video["height"] = height
    if video:
        body["video_config"] = video
    return body


def _read_bounded(response: httpx.Response, chunks: list[bytes], deadline: float) -> None:
    # Streamed so a huge (or endless) body costs at most MAX_BODY bytes of memory, and a slow
    # one at most the call's limit (plus the one read that is waiting when it passes).
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk[: MAX_BODY - size])
        size += len(chunk)
        if size >= MAX_BODY:
            return
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the answer took longer than the call's limit")


def _with_call(livestream: Livestream, call: CallInfo) -> Livestream:
    return replace(livestream, call=call)


def _seg(value: str) -> str:
    # Quoted so an id like "../x" cannot walk to another endpoint.
    return quote(value, safe="")


def _app_path(account_id: str, app_id: str) -> str:
    return f"/accounts/{_seg(account_id)}/realtime/kit/{_seg(app_id)}"


def _meeting_path(account_id: str, app_id: str, meeting_id: str, rest: str) -> str:
    return f"{_app_path(account_id, app_id)}/meetings/{_seg(meeting_id)}/{rest}"
