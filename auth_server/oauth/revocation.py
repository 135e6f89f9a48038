"""Token revocation (RFC 7009): a refresh token ends its whole session; an access token's `jti`
is denied until it expires. Only the client a token was issued to may revoke it.

What a revocation counts (contract §7, AUTH_SESSION_RATE_LIMIT and AUTH_CLIENT_RATE_LIMIT):
- a live session's refresh token: its client (per address) and its session;
- a live access token: its client (per address) only. Its session's limit belongs to whoever
  holds the refresh token: an access token that leaked (even an expired one) must not let anyone
  use up the session's refreshes;
- a token that is already revoked or expired (or whose session has ended): nothing, and nothing
  is written (no feed row, no audit row): revoking it again changes nothing;
- an unknown token, or another client's (which RFC 7009 §2.1 answers alike): its client.
Each count is taken before anything is written, so a refused revocation writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server import audit
from auth_server.oauth.clients import ClientRecord
from auth_server.oauth.limits import SessionLimits
from auth_server.oauth.tokens import names_a_user
from auth_server.revocations import RevocationKind, RevocationPublisher
from auth_server.sessions.repository import SessionRecord
from auth_server.sessions.service import SessionService
from auth_server.settings import AuthSettings, accepted_until
from shared.errors import TokenError
from shared.verification import TokenVerifier, token_kid


class TokenRevocation:
    def __init__(
        self,
        settings: AuthSettings,
        *,
        sessions: SessionService,
        verifier: TokenVerifier,
        revocations: RevocationPublisher,
        limits: SessionLimits,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._verifier = verifier
        self._revocations = revocations
        self._limits = limits
        self._clock = clock

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
        returned either way. SlowDown (429) when a count is over its limit."""
        # A client this replica already saw over its limit from this address is refused first
        # (no round trip, no count).
        self._limits.check_client(client.id, ip)

        async def refresh_token() -> bool:
            async def admit(session: SessionRecord) -> None:
                await self._limits.client_and_session(client.id, ip, session.id)

            return await self._sessions.revoke_refresh_token(
                db, token, client.id, ip=ip, user_agent=user_agent, admit=admit
            )

        async def access_token() -> bool:
            return await self._revoke_access_token(db, client, token, ip, user_agent)

        # RFC 7009 §2.1: the hint is only a hint; both kinds are tried.
        kinds = (
            (access_token, refresh_token)
            if hint == "access_token"
            else (refresh_token, access_token)
        )
        for kind in kinds:
            if await kind():
                return
        await self._limits.client(client.id, ip)  # unknown, or another client's

    async def _revoke_access_token(
        self,
        db: AsyncSession,
        client: ClientRecord,
        token: str,
        ip: str | None,
        user_agent: str | None,
    ) -> bool:
        """True when `token` is one of this client's access tokens (revoked now, or found
        revoked or expired already); False when it is unknown or another client's."""
        try:
            claims = await self._verifier.verify_expired_ok(token)
        except TokenError:
            return False
        # RFC 7009 §2.1: only the client the token was issued to may revoke it; for anyone else
        # the request is answered like an unknown token and nothing changes.
        if claims.client_id != client.id:
            return False
        until = accepted_until(self._settings, dt.datetime.fromtimestamp(claims.exp, dt.UTC))
        if until.timestamp() <= self._clock():
            return True  # no verifier accepts it any more: nothing to deny
        if await self._sessions.token_is_revoked(
            db,
            jti=claims.jti,
            sid=claims.sid,
            sub=claims.sub,
            iat=claims.iat,
            kid=token_kid(token),
        ):
            return True  # denied already (its `jti`, its session, its user or its key)
        await self._limits.client(client.id, ip)
        try:
            async with db.begin_nested():
                await self._revocations.add(db, RevocationKind.JTI, claims.jti, until)
        except IntegrityError:
            # A concurrent revocation of the same token wrote its row first (one row per `jti`:
            # the unique index uq_revocations_jti decides, on PostgreSQL as on SQLite).
            return True
        audit.record(
            db,
            audit.REVOKE,
            # A client-credentials token has no user: its `sub` is the client (up to 128
            # characters), which audit_events.user_id (a user id) can't hold.
            user_id=claims.sub if names_a_user(claims) else None,
            session_id=claims.sid,
            client_id=client.id,
            ip=ip,
            user_agent=user_agent,
            detail={"token_type": "access_token"},
        )
        return True
