"""The ASGI app: `create_app(settings)`, and `app_from_env` for `livestreams serve` (uvicorn)."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import Depends, FastAPI

from worker.http import (
    bookings,
    deps,
    metrics,
    ops,
    pages,
    problems,
    provider_webhooks,
    series,
    webhook_endpoints,
)
from worker.http.pages.render import OpsHeaders
from worker.inbound.signature import WebhookKeys
from worker.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """The HTTP API over ``settings``' database; engines are made per process on first use."""
    app = FastAPI(
        title="livestream-scheduler",
        version=version("livestream-scheduler"),
        description="Book Cloudflare RealtimeKit livestreams to start once, on time.",
        dependencies=[Depends(deps.plain_text)],
        # No /docs nor /redoc: they load their scripts from a CDN, on the ops page's origin,
        # where a changed script would act with an ops person's cookie. /openapi.json stays.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    # One per process (uvicorn builds the app in each worker): a fetched key is kept here.
    app.state.webhook_keys = WebhookKeys.from_settings(settings)
    problems.install(app)
    metrics.install(app, settings)
    app.include_router(ops.router)
    app.include_router(metrics.router)
    app.include_router(bookings.router)
    app.include_router(series.router)
    app.include_router(series.capacity_router)
    app.include_router(provider_webhooks.router)
    app.include_router(webhook_endpoints.router)
    pages.install(app)  # /ops: the ops web page
    app.add_middleware(OpsHeaders)
    app.add_middleware(problems.BodyLimit)
    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory (`livestreams serve`): each worker process reads the environment."""
    return create_app(Settings.from_env())
