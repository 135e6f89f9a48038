"""GET and POST /userinfo (OIDC Core §5.3): the claims of the token's user, by its scopes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from auth_server.api.deps import CurrentClaims, CurrentUser, bearer
from auth_server.oauth.scopes import OPENID
from auth_server.oidc.userinfo import userinfo_claims
from shared.service.openapi import WWW_AUTHENTICATE_BEARER, problem

router = APIRouter(tags=["openid"])


class UserInfo(BaseModel):
    """OIDC Core §5.1 standard claims (those this server has)."""

    model_config = ConfigDict(extra="allow")

    sub: str
    preferred_username: str | None = None
    email: str | None = None
    email_verified: bool | None = None


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": {"Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}}}},
    403: problem(
        "The token lacks the `openid` scope (an RFC 6750 `insufficient_scope` challenge).",
        headers={"WWW-Authenticate": {**WWW_AUTHENTICATE_BEARER, "required": False}},
    ),
}


async def _userinfo(claims: CurrentClaims, user: CurrentUser) -> JSONResponse:
    if OPENID not in claims.scopes:
        raise bearer.challenge(
            status=403,
            error="insufficient_scope",
            description="the access token lacks the openid scope",
            scope=OPENID,
        )
    return JSONResponse(
        userinfo_claims(user, set(claims.scopes)), headers={"Cache-Control": "no-store"}
    )


@router.get("/userinfo", response_model=UserInfo, summary="UserInfo", responses=RESPONSES)
async def userinfo_get(claims: CurrentClaims, user: CurrentUser) -> JSONResponse:
    return await _userinfo(claims, user)


@router.post("/userinfo", response_model=UserInfo, summary="UserInfo", responses=RESPONSES)
async def userinfo_post(claims: CurrentClaims, user: CurrentUser) -> JSONResponse:
    return await _userinfo(claims, user)
