"""Token revocation (RFC 7009): a refresh token ends its whole session; an access token's `jti`
is denied until it expires. Only the client a token was issued to may revoke it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server import audit
from auth_server.oauth.clients import ClientRecord
from auth_server.oauth.limits import SessionLimits
from auth_server.revocations import RevocationKind, RevocationPublisher
from auth_server.sessions.repository import SessionRecord
from auth_server.sessions.service import SessionService
from auth_server.settings import AuthSettings, accepted_until
from shared.errors import TokenError
from shared.verification import TokenVerifier


class TokenRevocation:
    def __init__(
        self,
        settings: AuthSettings,
        *,
        sessions: SessionService,
        verifier: TokenVerifier,
        revocations: RevocationPublisher,
        limits: SessionLimits,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._verifier = verifier
        self._revocations = revocations
        self._limits = limits

    async def _admit(self, session: SessionRecord) -> None:
        await self._limits.session(session.id)

    async def revoke(
        self,
        db: AsyncSession,
        *,
        client: ClientRecord,
        token: str,
        hint: str | None,
        ip: str | None,
        user_agent: str | None,
    ) -> None:
        """RFC 7009 §2.2: unknown or already invalid tokens are not an error, so nothing is
        returned either way. Revocations are limited per client and address, and per session."""
        await self._limits.client(client.id, ip)
        # RFC 7009 §2.1: the hint is only a hint; both kinds are tried.
        if hint == "access_token":
            if not await self._revoke_access_token(db, client, token, ip, user_agent):
                await self._sessions.revoke_refresh_token(
                    db, token, client.id, ip=ip, user_agent=user_agent, admit=self._admit
                )
            return
        if not await self._sessions.revoke_refresh_token(
            db, token, client.id, ip=ip, user_agent=user_agent, admit=self._admit
        ):
            await self._revoke_access_token(db, client, token, ip, user_agent)

    async def _revoke_access_token(
        self,
        db: AsyncSession,
        client: ClientRecord,
        token: str,
        ip: str | None,
        user_agent: str | None,
    ) -> bool:
        """True when `token` is one of our access tokens (revoked if it is this client's)."""
        try:
            claims = await self._verifier.verify_expired_ok(token)
        except TokenError:
            return False
        # RFC 7009 §2.1: only the client the token was issued to may revoke it; for anyone else
        # the request is answered like an unknown token and nothing changes.
        if claims.client_id != client.id:
            return True
        if claims.sid is not None:
            await self._limits.session(claims.sid)
        expires = dt.datetime.fromtimestamp(claims.exp, dt.UTC)
        until = accepted_until(self._settings, expires)
        await self._revocations.add(db, RevocationKind.JTI, claims.jti, until)
        audit.record(
            db,
            audit.REVOKE,
            # A client-credentials token has no user: its `sub` is the client (up to 128
            # characters), which audit_events.user_id (a user id) can't hold.
            user_id=claims.sub if claims.sid is not None else None,
            session_id=claims.sid,
            client_id=client.id,
            ip=ip,
            user_agent=user_agent,
            detail={"token_type": "access_token"},
        )
        return True
