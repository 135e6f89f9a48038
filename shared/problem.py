"""RFC 9457 `application/problem+json` errors: one exception family, one place that maps it to HTTP.

Both services install these handlers. OAuth endpoints (RFC 6749 §5.2) and bearer challenges
(RFC 6750 §3) have their own families and handlers; everything else speaks problem+json.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

log = logging.getLogger("shared.problem")

PROBLEM_JSON = "application/problem+json"
# Failures to reach a backing service (connection refused, pool exhausted, database gone).
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    ConnectionError,
    TimeoutError,
)


class ProblemError(Exception):
    """A client-visible error rendered as problem+json. Subclass per family, or raise directly."""

    status: int = 400
    title: str | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        title: str | None = None,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or title or "")
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.detail = detail
        self.type = type_
        self.headers = headers or {}
        self.extra = extra or {}


class NotFound(ProblemError):
    status = 404


class Conflict(ProblemError):
    status = 409


class Forbidden(ProblemError):
    status = 403


class TooManyRequests(ProblemError):
    status = 429


class Unprocessable(ProblemError):
    status = 422


class ServiceUnavailable(ProblemError):
    status = 503


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
    instance: str | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _safe_validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # FastAPI echoes the offending `input` by default; it may be a password, so it never leaves.
    out = []
    for err in exc.errors():
        out.append(
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error family a client can provoke to problem+json; the catch-all logs and hides."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            exc.status,
            title=exc.title,
            detail=exc.detail,
            type_=exc.type,
            headers=exc.headers,
            instance=request.url.path,
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(
            422,
            title="Unprocessable Content",
            detail="The request is not valid.",
            instance=request.url.path,
            errors=_safe_validation_errors(exc),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(
            exc.status_code,
            detail=detail if detail != HTTPStatus(exc.status_code).phrase else None,
            headers=dict(exc.headers or {}),
            instance=request.url.path,
        )

    async def _dependency_down(request: Request, exc: Exception) -> JSONResponse:
        # A database that can't be reached is not a bug of ours and not the client's fault:
        # 503 with Retry-After, and nothing was done.
        log.warning(
            "backing service unavailable on %s %s: %s", request.method, request.url.path, exc
        )
        return problem_response(
            503,
            detail="A backing service is unavailable; try again shortly.",
            headers={"Retry-After": "5"},
            instance=request.url.path,
        )

    for error in DEPENDENCY_ERRORS:
        app.add_exception_handler(error, _dependency_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, detail="An unexpected error occurred.")


__all__ = [
    "PROBLEM_JSON",
    "Conflict",
    "Forbidden",
    "NotFound",
    "ProblemError",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unprocessable",
    "install_problem_handlers",
    "problem_response",
]
