"""What both services' OpenAPI documents declare beyond each route's success, in one place.

A generated client must work the first time, so each document states every status and content
type a route can answer (issue 9; checked by schemathesis in tests/fuzz):

- `install_openapi(app)` rewrites the generated document once: FastAPI's 422 becomes the
  problem+json that `shared.service.problem` really sends; every operation with a body may get
  400 (a body that is not UTF-8 JSON), 413 (`BodyLimitMiddleware`) and 422; every operation
  that needs a backing service may get 503 with `Retry-After`; every bearer-protected operation
  may get 401 with its RFC 6750 challenge (and 403 `insufficient_scope` where it names scopes).
- Routes declare what is theirs alone (404, 409, a cursor's 400, 429...) with the helpers below,
  e.g. `responses=problems({404: "No such note."})`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import FastAPI

from shared.fastapi import PROBLEM_JSON

Response = dict[str, Any]

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# RFC 9457 problem details, as `shared.fastapi.problem_response` writes them.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "A URI reference; `about:blank` here."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request's path."},
        "error": {
            "type": "string",
            "description": "With a bearer challenge: its RFC 6750 error code.",
        },
        "errors": {
            "type": "array",
            "description": "With 422: what was wrong, by location (never the value sent).",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}


# Stored text refuses U+0000 (PostgreSQL can't store it): 422 on every database. Spelled as
# "does not contain" rather than an anchored pattern, which is costly to generate long strings for.
NO_NUL: dict[str, Any] = {"not": {"pattern": "\\u0000"}}


def header(description: str, *, required: bool = False, **schema: Any) -> dict[str, Any]:
    return {
        "description": description,
        "required": required,
        "schema": {"type": "string", **schema},
    }


RETRY_AFTER = header("Seconds to wait before trying again.", required=True, pattern="^[0-9]+$")
WWW_AUTHENTICATE_BEARER = header(
    'RFC 6750 §3 challenge: `Bearer realm="...", error="...", error_description="..."` '
    '(no `error` when no token was sent; `scope="..."` with insufficient_scope).',
    required=True,
)


def problem(description: str, *, headers: Mapping[str, Any] | None = None) -> Response:
    """A response whose body is problem+json."""
    response: Response = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
    }
    if headers:
        response["headers"] = dict(headers)
    return response


def problems(statuses: Mapping[int, str]) -> dict[int | str, Response]:
    """`responses=` for a route: each status with its description, as problem+json."""
    return {status: problem(description) for status, description in statuses.items()}


def too_many_requests(description: str) -> dict[int | str, Response]:
    return {429: problem(description, headers={"Retry-After": RETRY_AFTER})}


READINESS_SCHEMA: dict[str, Any] = {
    "title": "Readiness",
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ready", "degraded", "not ready"]},
        "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
    },
}
_READINESS_BODY = {"application/json": {"schema": READINESS_SCHEMA}}
NO_STORE = {"Cache-Control": header("`no-store`.", required=True, enum=["no-store"])}
# shared.service.health.readiness: 503 while a required check fails (no Retry-After: it is for
# load balancers and orchestrators, which poll anyway).
READINESS_RESPONSES: dict[int | str, Response] = {
    200: {
        "description": "Ready, or `degraded` while an optional dependency (Redis) is down.",
        "content": _READINESS_BODY,
        "headers": NO_STORE,
    },
    503: {"description": "Not ready.", "content": _READINESS_BODY, "headers": NO_STORE},
}
# What needs no backing service, so never answers 503 for one (readiness answers its own).
INDEPENDENT_PATHS = ("/healthz", "/readyz")

UNAVAILABLE = (
    "A backing service (the database, the rate-limit store) is unavailable; nothing was done."
)
BAD_BODY = "The body could not be read: it is not UTF-8, or not the JSON it claims to be."
TOO_LARGE = "The body is larger than the service accepts (decided before it is parsed)."
INVALID = "The request does not match this document: the body's or a parameter's schema."
NO_TOKEN = "No valid access token: missing, malformed, expired, revoked, or not for this API."
NO_SCOPE = "The access token lacks a scope this operation needs (`insufficient_scope`)."


def _operations(document: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}:
                yield path, method, operation


def _merge(responses: dict[str, Any], status: int, response: Response) -> None:
    """Add `response` under `status` without losing what the route declared there."""
    existing = responses.setdefault(str(status), {"description": response["description"]})
    for media, body in response.get("content", {}).items():
        existing.setdefault("content", {}).setdefault(media, copy.deepcopy(body))
    for name, spec in response.get("headers", {}).items():
        existing.setdefault("headers", {}).setdefault(name, copy.deepcopy(spec))


# `BearerAuth` declares the OAuth2 password flow (Swagger UI's Authorize button logs in with it);
# what a client sends is an RFC 6750 bearer token, which is this alternative. (schemathesis'
# `ignored_auth` check also knows only such schemes.)
OAUTH2 = "OAuth2"
BEARER = "bearerToken"
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "An access token from the auth server's token endpoint (RFC 6750 §2.1).",
}


def _bearer_security(operation: dict[str, Any]) -> tuple[bool, bool]:
    """Add the plain bearer alternative to an OAuth2 requirement; returns (whether a bearer token
    is required, whether it must carry scopes)."""
    requirements = operation.get("security") or []
    if not requirements or not all(OAUTH2 in requirement for requirement in requirements):
        return False, False  # no security, another kind, or an anonymous alternative
    scopes = [scope for requirement in requirements for scope in requirement[OAUTH2]]
    operation["security"] = [*requirements, {BEARER: list(scopes)}]
    return True, bool(scopes)


def declare_common_responses(
    document: dict[str, Any], *, independent: Iterable[str] = ()
) -> dict[str, Any]:
    """Rewrite a generated document in place (see the module's docstring). `independent` lists
    the paths that need no backing service, so never answer 503 for one."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
    independent = set(independent)
    for path, _, operation in _operations(document):
        responses = operation.setdefault("responses", {})
        if "422" in responses:
            # FastAPI declares its own validation body; ours is problem+json (shared.service.problem).
            responses["422"] = problem(INVALID)
        body = operation.get("requestBody")
        if body is not None:
            if "application/json" in body.get("content", {}):
                _merge(responses, 400, problem(BAD_BODY))
                _merge(responses, 422, problem(INVALID))
            _merge(responses, 413, problem(TOO_LARGE))
        bearer, scoped = _bearer_security(operation)
        if bearer:
            challenge = {"WWW-Authenticate": WWW_AUTHENTICATE_BEARER}
            _merge(responses, 401, problem(NO_TOKEN, headers=challenge))
            if scoped:
                _merge(responses, 403, problem(NO_SCOPE, headers=challenge))
        if path not in independent:
            _merge(responses, 503, problem(UNAVAILABLE, headers={"Retry-After": RETRY_AFTER}))
    if OAUTH2 in document["components"].get("securitySchemes", {}):
        document["components"]["securitySchemes"][BEARER] = dict(BEARER_SCHEME)
    # FastAPI's validation schemas are no longer referenced.
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def install_openapi(
    app: FastAPI,
    *,
    independent: Iterable[str] = (),
    customize: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Make `app.openapi()` return the document with the common declarations (and then whatever
    `customize` adds), built once."""
    original = app.openapi
    independent = tuple(independent)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = declare_common_responses(original(), independent=independent)
            if customize is not None:
                customize(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = [
    "BAD_BODY",
    "INDEPENDENT_PATHS",
    "NO_NUL",
    "PROBLEM_REF",
    "PROBLEM_SCHEMA",
    "READINESS_RESPONSES",
    "RETRY_AFTER",
    "UNAVAILABLE",
    "WWW_AUTHENTICATE_BEARER",
    "declare_common_responses",
    "header",
    "install_openapi",
    "problem",
    "problems",
    "too_many_requests",
]
