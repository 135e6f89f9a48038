"""GET /.well-known/jwks.json (RFC 7517): public parts only, cacheable, revalidated by ETag."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from auth_server.api.deps import auth_state
from auth_server.api.openapi import JWKS_PARAMETERS, JWKS_RESPONSES, JsonWebKeySet

router = APIRouter(tags=["discovery"])


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison over a list of entity tags, or `*`."""
    if if_none_match.strip() == "*":
        return True
    candidates = (part.strip().removeprefix("W/") for part in if_none_match.split(","))
    return etag in candidates


@router.get(
    "/.well-known/jwks.json",
    summary="The public signing keys (JWKS)",
    response_model=JsonWebKeySet,
    responses=JWKS_RESPONSES,
    openapi_extra=JWKS_PARAMETERS,
)
async def jwks(request: Request) -> Response:
    state = auth_state(request)
    document, etag = await state.keys.jwks()
    headers = {"Cache-Control": f"public, max-age={state.settings.jwks_max_age}", "ETag": etag}
    if _matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(document, headers=headers)
