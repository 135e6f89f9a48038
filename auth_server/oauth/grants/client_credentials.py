"""The client credentials grant (RFC 6749 §4.4): confidential clients only; no refresh token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.oauth.errors import UnauthorizedClient
from auth_server.oauth.grants.base import TokenRequest
from auth_server.oauth.scopes import grant_scope, parse_scope
from auth_server.oauth.tokens import token_response
from auth_server.sessions import audit

if TYPE_CHECKING:
    from auth_server.context import AuthContext


async def client_credentials_grant(
    ctx: AuthContext, db: AsyncSession, req: TokenRequest
) -> dict[str, Any]:
    if not req.client.is_confidential:
        raise UnauthorizedClient("client_credentials is for confidential clients")
    scope = grant_scope(parse_scope(req.params.get("scope")), frozenset(req.client.scopes.split()))
    # RFC 9068 §2.2: with no resource owner, `sub` is the client itself.
    access = await ctx.tokens.issue_access_token(
        sub=req.client.id, client_id=req.client.id, scope=scope, sid=None
    )
    audit.record(
        db, audit.CLIENT_CREDENTIALS, client_id=req.client.id, ip=req.ip, user_agent=req.user_agent
    )
    await db.commit()
    return token_response(access)  # RFC 6749 §4.4.3: a refresh token SHOULD NOT be included
