"""The notes API's own OpenAPI declarations: transparent refresh (the `Refresh-Token` request
header and the `New-*` response headers, contract §6) and the opaque cursor.

What both services share (problem+json, 400/413/422 for bodies, 503, bearer challenges) is
`shared.service.openapi`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from resource_server.settings import ResourceSettings
from shared.fastapi import NEW_TOKEN_HEADERS, REFRESH_TOKEN_HEADER
from shared.service.openapi import INDEPENDENT_PATHS, header, install_openapi

# Opaque to clients: send back a page's `next_cursor` unchanged (anything else is a 400).
CURSOR_FORMAT = "notes-cursor"
CURSOR_SCHEMA: dict[str, Any] = {
    "format": CURSOR_FORMAT,
    "description": "The `next_cursor` of the previous page, unchanged (it is opaque).",
}
NEW_TOKENS = {
    NEW_TOKEN_HEADERS[0]: header("After a transparent refresh: the new access token."),
    NEW_TOKEN_HEADERS[1]: header("After a transparent refresh: the new refresh token."),
    NEW_TOKEN_HEADERS[2]: header(
        "After a transparent refresh: the new access token's lifetime, in seconds.",
        pattern="^[0-9]+$",
    ),
}
REFRESH_TOKEN_PARAMETER = {
    "name": REFRESH_TOKEN_HEADER,
    "in": "header",
    "required": False,
    "description": "With an expired (otherwise valid) access token: the session's refresh "
    "token, exchanged on the caller's behalf; the new pair comes back in the `New-*` headers.",
    "schema": {"type": "string"},
}


def _transparent_refresh(document: dict[str, Any]) -> None:
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or not operation.get("security"):
                continue
            operation.setdefault("parameters", []).append(dict(REFRESH_TOKEN_PARAMETER))
            for response in operation.get("responses", {}).values():
                response.setdefault("headers", {}).update(NEW_TOKENS)


def install(app: FastAPI, settings: ResourceSettings) -> None:
    """The notes API's document: the common declarations, then transparent refresh (when
    RESOURCE_TRANSPARENT_REFRESH is on)."""
    install_openapi(
        app,
        independent=INDEPENDENT_PATHS,
        customize=_transparent_refresh if settings.transparent_refresh else None,
    )


__all__ = ["CURSOR_FORMAT", "CURSOR_SCHEMA", "install"]
