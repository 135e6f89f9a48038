"""Liveness and readiness (the key set has been loaded at least once)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: a key set has been loaded")
async def readyz(request: Request) -> JSONResponse:
    key_set = request.app.state.key_source
    ready = bool(getattr(key_set, "ready", True))
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": {"key_set": ready}},
        status_code=200 if ready else 503,
    )
