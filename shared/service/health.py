"""Readiness answers both services share: required checks decide 200 or 503; optional ones
(Redis, which only makes things faster) turn a ready service "degraded", still 200."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping

from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("shared.service.health")
PROBE_TIMEOUT = 2.0


async def probe(name: str, check: Awaitable[object], within: float = PROBE_TIMEOUT) -> bool:
    """True when `check` finishes in time without raising (and is not False)."""
    try:
        async with asyncio.timeout(within):
            result = await check
    except Exception as exc:  # readiness reports failure, it never raises
        log.warning("readiness: %s is down: %s", name, exc)
        return False
    return result is not False


async def database_answers(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


def readiness(required: Mapping[str, bool], optional: Mapping[str, bool]) -> JSONResponse:
    if not all(required.values()):
        status, code = "not ready", 503
    elif not all(optional.values()):
        status, code = "degraded", 200
    else:
        status, code = "ready", 200
    return JSONResponse(
        {"status": status, "checks": {**required, **optional}},
        status_code=code,
        headers={"Cache-Control": "no-store"},
    )


__all__ = ["database_answers", "probe", "readiness"]
