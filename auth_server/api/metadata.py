"""GET /.well-known/oauth-authorization-server (RFC 8414) and /.well-known/openid-configuration
(OpenID Connect Discovery 1.0): the same document at both addresses."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from auth_server.api.deps import Settings
from auth_server.api.openapi import Metadata
from auth_server.oauth.clients import GRANT_TYPES
from auth_server.oauth.scopes import ALL_SCOPES
from auth_server.oidc.discovery import provider_metadata
from shared.service.openapi import header

router = APIRouter(tags=["discovery"])


def authorization_server_metadata(issuer: str) -> dict[str, Any]:
    return provider_metadata(issuer, grant_types=sorted(GRANT_TYPES), scopes=sorted(ALL_SCOPES))


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


@router.get(
    "/.well-known/openid-configuration",
    summary="OpenID Provider metadata",
    response_model=Metadata,
    responses={200: {"headers": {"Cache-Control": header("`public, max-age=3600`.")}}},
)
async def openid_configuration(settings: Settings) -> JSONResponse:
    return JSONResponse(
        authorization_server_metadata(settings.issuer_base),
        headers={"Cache-Control": "public, max-age=3600"},
    )
