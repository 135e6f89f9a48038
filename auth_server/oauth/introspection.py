"""Token introspection (RFC 7662 §2.2): whether a token is active, and its claims if it is."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.sessions.service import SessionService
from shared.errors import TokenError
from shared.service.db import utcnow
from shared.verification import TokenVerifier, token_kid

INACTIVE: dict[str, Any] = {"active": False}


class TokenIntrospection:
    def __init__(self, *, issuer: str, sessions: SessionService, verifier: TokenVerifier) -> None:
        self._issuer = issuer
        self._sessions = sessions
        self._verifier = verifier

    async def introspect(self, db: AsyncSession, token: str, hint: str | None) -> dict[str, Any]:
        # RFC 7662 §2.1: the hint may speed up the look-up; both kinds are tried.
        if hint != "access_token":
            refresh = await self._refresh_token(db, token)
            if refresh is not None:
                return refresh
        access = await self._access_token(db, token)
        if access is not None:
            return access
        if hint == "access_token":
            refresh = await self._refresh_token(db, token)
            if refresh is not None:
                return refresh
        return INACTIVE

    async def _refresh_token(self, db: AsyncSession, token: str) -> dict[str, Any] | None:
        """None when `token` is not one of our refresh tokens."""
        record = await self._sessions.find_refresh_token(db, token)
        if record is None:
            return None
        session = record.session
        if record.used_at is not None or not session.is_live(utcnow()):
            return INACTIVE
        return {
            "active": True,
            "token_type": "refresh_token",
            "scope": record.scope,
            "client_id": session.client_id,
            "sub": session.user_id,
            "sid": session.id,
            "exp": int(session.expires_at.timestamp()),
            "iat": int(record.created_at.timestamp()),
            "iss": self._issuer,
        }

    async def _access_token(self, db: AsyncSession, token: str) -> dict[str, Any] | None:
        """None when `token` is not an active access token of ours."""
        try:
            claims = await self._verifier.verify(token)
        except TokenError:
            return None
        if await self._sessions.token_is_revoked(
            db,
            jti=claims.jti,
            sid=claims.sid,
            sub=claims.sub,
            iat=claims.iat,
            kid=token_kid(token),
        ):
            return INACTIVE
        body: dict[str, Any] = {
            "active": True,
            "token_type": "Bearer",
            "scope": claims.scope,
            "client_id": claims.client_id,
            "sub": claims.sub,
            "aud": claims.aud if isinstance(claims.aud, str) else list(claims.aud),
            "iss": claims.iss,
            "exp": claims.exp,
            "iat": claims.iat,
            "jti": claims.jti,
        }
        if claims.sid:
            body["sid"] = claims.sid
        return body
