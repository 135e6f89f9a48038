"""GET /.well-known/oauth-authorization-server (RFC 8414)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from auth_server.api.deps import Settings
from auth_server.api.openapi import Metadata
from auth_server.oauth.clients import GRANT_TYPES
from auth_server.oauth.scopes import ALL_SCOPES
from shared.service.openapi import header

router = APIRouter(tags=["discovery"])


def authorization_server_metadata(issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_feed_endpoint": f"{issuer}/revocations",
        "grant_types_supported": sorted(GRANT_TYPES),
        "response_types_supported": [],  # no authorization endpoint
        "scopes_supported": sorted(ALL_SCOPES),
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "service_documentation": f"{issuer}/docs",
    }


@router.get(
    "/.well-known/oauth-authorization-server",
    summary="Authorization server metadata",
    response_model=Metadata,
    responses={200: {"headers": {"Cache-Control": header("`public, max-age=3600`.")}}},
)
async def metadata(settings: Settings) -> JSONResponse:
    return JSONResponse(
        authorization_server_metadata(settings.issuer_base),
        headers={"Cache-Control": "public, max-age=3600"},
    )
