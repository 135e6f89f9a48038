"""The refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.oauth.errors import InvalidGrant, InvalidRequest, InvalidScope
from auth_server.oauth.grants.base import TokenRequest
from auth_server.oauth.limits import SessionLimits
from auth_server.oauth.scopes import OPENID, parse_scope
from auth_server.oauth.tokens import TokenIssuer, token_response
from auth_server.oidc.id_token import IdTokenIssuer
from auth_server.sessions.repository import SessionRecord
from auth_server.sessions.service import (
    RefreshFailed,
    RotationPlan,
    ScopeWidened,
    SessionService,
)


class RefreshTokenGrant:
    """Besides RFC 6749's parameters it takes `sid`, an extension for relays: a resource server
    refreshing on its caller's behalf names the session of the caller's expired access token,
    and a refresh token of any other session is refused without being spent."""

    def __init__(
        self,
        *,
        sessions: SessionService,
        tokens: TokenIssuer,
        limits: SessionLimits,
        id_tokens: IdTokenIssuer | None = None,
    ) -> None:
        self._sessions = sessions
        self._tokens = tokens
        self._limits = limits
        self._id_tokens = id_tokens

    async def __call__(self, db: AsyncSession, req: TokenRequest) -> dict[str, Any]:
        token = req.params.get("refresh_token")
        if not token:
            raise InvalidRequest("refresh_token is required")
        requested = parse_scope(req.params.get("scope"))
        # Every request counts once against its client's limit (per client and address), and a
        # request with a live session's token against that session's limit too. Both are
        # counted in one round trip once the token's session is known, before anything is
        # spent; a request that never gets that far (an invalid token, a replay) counts against
        # its client alone. A client this replica already saw over its limit is refused first,
        # before any database work.
        self._limits.check_client(req.client.id, req.ip)
        counted = False

        async def admit(session: SessionRecord) -> None:
            nonlocal counted
            if not counted:  # once per request, also when a lost race tries again
                counted = True
                await self._limits.client_and_session(req.client.id, req.ip, session.id)

        async def count_client() -> None:
            if not counted:
                await self._limits.client(req.client.id, req.ip)

        async def answer_for(
            plan: RotationPlan, tx: AsyncSession | None
        ) -> tuple[dict[str, Any], str]:
            session = plan.session
            access = await self._tokens.issue_access_token(
                tx,
                sub=session.user_id,
                client_id=session.client_id,
                scope=plan.scope,
                sid=session.id,
                authentication=session.authentication,
            )
            id_token = None
            if self._id_tokens is not None and OPENID in plan.scope.split():
                # OIDC Core §12.2: no nonce; the sign-in's auth_time, amr and acr are kept.
                # Signed with the key just checked for the access token.
                id_token = await self._id_tokens.issue(
                    None,
                    sub=session.user_id,
                    client_id=session.client_id,
                    sid=session.id,
                    authentication=session.authentication,
                    access_token=access.token,
                )
            return token_response(access, plan.refresh_token, id_token), access.kid

        try:
            answer = await self._sessions.rotate(
                db,
                token=token,
                client_id=req.client.id,
                requested_scope=requested,
                ip=req.ip,
                user_agent=req.user_agent,
                answer_for=answer_for,
                expected_session=req.params.get("sid"),
                admit=admit,
            )
        except RefreshFailed:
            await count_client()
            # One answer for every failure: unknown, ended, reused or another client's token.
            raise InvalidGrant("the refresh token is invalid, expired or revoked") from None
        except ScopeWidened:
            await count_client()
            raise InvalidScope("the requested scope exceeds the session's scope") from None
        await count_client()  # a replay within the grace window
        return answer
