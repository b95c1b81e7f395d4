"""Liveness for load balancers, and the pipeline's health (`livestreams status`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from worker.health import check
from worker.http.deps import OpsKey, SessionDep, SettingsDep
from worker.http.problems import MEDIA_TYPE, PROBLEM_SCHEMA, declared

router = APIRouter()


@router.get("/healthz", tags=["ops"])
def healthz() -> dict[str, Any]:
    """The process answers; no database, no auth (for load balancer checks)."""
    return {"ok": True}


UNHEALTHY = {
    "description": "unhealthy (the health, as for 200), or the database is unavailable",
    "content": {"application/json": {}, MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}},
}


@router.get("/v1/status", tags=["ops"], responses={**declared(401, 403), 503: UNHEALTHY})
def status(session: SessionDep, settings: SettingsDep, _key: OpsKey) -> JSONResponse:
    """What `livestreams status --json` prints: 200 when healthy, 503 when not (scope ops)."""
    health = check(session, settings)
    return JSONResponse(health.as_dict(), status_code=200 if health.healthy else 503)
