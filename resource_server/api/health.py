"""Liveness and readiness (fresh keys and a known revocation state)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from resource_server.api.deps import resource_state
from shared.service.health import database_answers, probe, readiness
from shared.service.openapi import READINESS_RESPONSES

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses=READINESS_RESPONSES,
    summary="Readiness: fresh keys, a known revocation state, the database",
)
async def readyz(request: Request) -> JSONResponse:
    """503 without fresh keys, a known revocation state or the database; 200 "degraded" while
    a configured Redis is down (revocations then arrive by polling)."""
    state = resource_state(request)
    required = {
        "key_set": state.keys_ready,
        "revocations": state.revocations_ready,
        "database": await probe("database", database_answers(state.engine)),
    }
    optional = {}
    if state.feed is not None and state.settings.redis_url:
        optional["redis"] = state.feed.redis_connected
    return readiness(required, optional)
