"""Liveness and readiness. /metrics is installed by shared.metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from auth_server.api.deps import ContextDep

log = logging.getLogger("auth_server.health")
router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database reachable and a signing key active")
async def readyz(ctx: ContextDep) -> JSONResponse:
    checks = {"database": False, "signing_key": False}
    try:
        async with ctx.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = True
        checks["signing_key"] = await ctx.keys.has_active_key()
    except Exception as exc:  # readiness reports failure, it never raises
        log.warning("not ready: %s", exc)
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
