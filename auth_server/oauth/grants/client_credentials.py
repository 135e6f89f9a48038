"""The client credentials grant (RFC 6749 §4.4): confidential clients only; no refresh token."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server import audit
from auth_server.oauth.errors import UnauthorizedClient
from auth_server.oauth.grants.base import TokenRequest
from auth_server.oauth.scopes import grant_scope, parse_scope
from auth_server.oauth.tokens import TokenIssuer, token_response


class ClientCredentialsGrant:
    def __init__(self, tokens: TokenIssuer) -> None:
        self._tokens = tokens

    async def __call__(self, db: AsyncSession, req: TokenRequest) -> dict[str, Any]:
        if not req.client.is_confidential:
            raise UnauthorizedClient("client_credentials is for confidential clients")
        allowed = frozenset(req.client.scopes.split())
        scope = grant_scope(parse_scope(req.params.get("scope")), allowed)
        # RFC 9068 §2.2: with no resource owner, `sub` is the client itself.
        access = await self._tokens.issue_access_token(
            db, sub=req.client.id, client_id=req.client.id, scope=scope, sid=None
        )
        audit.record(
            db,
            audit.CLIENT_CREDENTIALS,
            client_id=req.client.id,
            ip=req.ip,
            user_agent=req.user_agent,
        )
        return token_response(access)  # RFC 6749 §4.4.3: a refresh token SHOULD NOT be included
