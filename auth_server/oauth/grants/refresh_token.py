"""The refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.oauth.errors import InvalidGrant, InvalidRequest
from auth_server.oauth.grants.base import TokenRequest
from auth_server.oauth.scopes import parse_scope
from auth_server.sessions.service import RefreshFailed, rotate

if TYPE_CHECKING:
    from auth_server.context import AuthContext


async def refresh_token_grant(
    ctx: AuthContext, db: AsyncSession, req: TokenRequest
) -> dict[str, Any]:
    token = req.params.get("refresh_token")
    if not token:
        raise InvalidRequest("refresh_token is required")
    try:
        return await rotate(
            ctx,
            db,
            token=token,
            client_id=req.client.id,
            requested_scope=parse_scope(req.params.get("scope")),
            ip=req.ip,
            user_agent=req.user_agent,
        )
    except RefreshFailed:
        # One answer for every failure: unknown, ended, reused or another client's token.
        raise InvalidGrant("the refresh token is invalid, expired or revoked") from None
