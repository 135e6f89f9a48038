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
from starlette.routing import Match

from shared.fastapi import PROBLEM_JSON, problem_response

log = logging.getLogger("shared.service.problem")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# Failures to reach a backing service (connection refused, pool exhausted, database gone).
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    ConnectionError,
    TimeoutError,
)
# PostgreSQL SQLSTATE classes and codes that mean "the database went away or isn't back yet":
# 08 connection exception, 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect
# now (starting up or shutting down), 53300 too many connections.
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")
# What asyncpg says when a connection dies under a query (it raises these without a SQLSTATE).
_UNAVAILABLE_WORDS = (
    "connection was closed",
    "connection is closed",
    "cannot switch to state",
    "connection lost",
    "terminating connection",
    "shutting down",
    "starting up",
)


def database_unavailable(exc: BaseException) -> bool:
    """Whether a database error means the database can't be reached right now (a 503, the
    client may retry), rather than a bug of ours (a 500)."""
    if isinstance(exc, DEPENDENCY_ERRORS):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(state, str) and state.startswith(_UNAVAILABLE_STATES):
            return True
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        text = str(current).lower()
        if any(words in text for words in _UNAVAILABLE_WORDS):
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


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


def allowed_methods(request: Request) -> str:
    """RFC 9110 §15.5.6: a 405 lists every method the resource supports. The router's own `Allow`
    names only the first route whose path matched, and `GET /notes` and `POST /notes` are two
    routes: ask every route whether it would take the request with each method."""
    routes = request.app.router.routes
    allowed = []
    for method in METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in routes):
            allowed.append(method)
    return ", ".join(allowed)


def install_problem_handlers(app: FastAPI, *, retry_after: int = 5) -> None:
    """Map every error family a client can provoke to problem+json; the catch-all logs and hides.
    `retry_after` is the Retry-After of the 503 sent when a backing service is down."""

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
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
        return problem_response(
            exc.status_code,
            detail=detail if detail != HTTPStatus(exc.status_code).phrase else None,
            headers=headers,
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
            headers={"Retry-After": str(retry_after)},
            instance=request.url.path,
        )

    for error in DEPENDENCY_ERRORS:
        app.add_exception_handler(error, _dependency_down)

    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        # Connections killed mid-query during a database restart surface as plain DBAPIErrors
        # (asyncpg's "connection was closed in the middle of operation", SQLSTATE 57P03...).
        if database_unavailable(exc):
            return await _dependency_down(request, exc)
        return await _unexpected(request, exc)

    app.add_exception_handler(sa_exc.DBAPIError, _database_error)

    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, detail="An unexpected error occurred.")

    app.add_exception_handler(Exception, _unexpected)


__all__ = [
    "PROBLEM_JSON",
    "Conflict",
    "Forbidden",
    "NotFound",
    "ProblemError",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unprocessable",
    "database_unavailable",
    "install_problem_handlers",
    "problem_response",
]
