"""Liveness and readiness. /metrics is installed by shared.service.metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from auth_server.api.deps import auth_state
from shared.service.health import database_answers, probe, readiness
from shared.service.openapi import READINESS_RESPONSES

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses=READINESS_RESPONSES,
    summary="Readiness: the database answers and a signing key is active",
)
async def readyz(request: Request) -> JSONResponse:
    """503 while the database or the signing key is missing; 200 "degraded" while a configured
    Redis is down (logins then count in the database, revocations travel by polling)."""
    state = auth_state(request)
    database = await probe("database", database_answers(state.engine))
    signing_key = database and await probe("signing key", state.keys.has_active_key())
    optional = {}
    if state.redis is not None:
        optional["redis"] = await probe("redis", state.redis.ping(), within=0.5)
    return readiness({"database": database, "signing_key": signing_key}, optional)
