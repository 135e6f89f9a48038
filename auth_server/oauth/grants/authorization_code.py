"""The authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.6, OIDC Core §3.1.3).

The code is single use, at most 60 s old, and bound to its client, redirect URI, PKCE challenge
and resource. A second use is refused with invalid_grant and ends the session its first use
started (RFC 6749 §4.1.2: "SHOULD revoke all tokens previously issued based on that code"), so
resource servers refuse those tokens too (a `sid` event in the revocation feed).

The exchange starts a child session of the browser session that signed the person in (contract
§8.3): its own `sid` and refresh chain, and the sign-in's auth_time, amr and acr.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server import audit
from auth_server.oauth.authorize import verify_code_verifier
from auth_server.oauth.codes import AuthorizationCodes
from auth_server.oauth.errors import InvalidGrant, InvalidRequest, InvalidTarget
from auth_server.oauth.grants.base import TokenRequest
from auth_server.oauth.scopes import OPENID
from auth_server.oauth.tokens import TokenIssuer, token_response
from auth_server.oidc.id_token import IdTokenIssuer
from auth_server.persistence.models import AuthorizationCode
from auth_server.sessions.authentication import Authentication
from auth_server.sessions.service import SessionService, new_session_id
from shared.service.db import utcnow

INVALID_CODE = "the authorization code is invalid, expired or used"


class AuthorizationCodeGrant:
    def __init__(
        self,
        *,
        codes: AuthorizationCodes,
        sessions: SessionService,
        tokens: TokenIssuer,
        id_tokens: IdTokenIssuer,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._codes = codes
        self._sessions = sessions
        self._tokens = tokens
        self._id_tokens = id_tokens
        self._clock = clock

    async def __call__(self, db: AsyncSession, req: TokenRequest) -> dict[str, Any]:
        code = req.params.get("code")
        if not code:
            raise InvalidRequest("code is required")
        now = self._clock()
        row = await self._codes.find(db, code)
        if row is None:
            raise InvalidGrant(INVALID_CODE)
        if row.used_at is not None:
            await self._replayed(db, row, req)
        # RFC 6749 §4.1.3: issued to this client, for this redirect URI; RFC 7636 §4.6: the
        # verifier matches the challenge. Checked before the code is spent, so a stolen code
        # presented without its verifier can't burn it for its owner.
        if row.client_id != req.client.id:
            raise InvalidGrant("the code was issued to another client")
        if row.expires_at <= now:
            raise InvalidGrant(INVALID_CODE)
        if req.params.get("redirect_uri") != row.redirect_uri:
            raise InvalidGrant("redirect_uri differs from the authorization request's")
        verifier = req.params.get("code_verifier")
        if row.code_challenge is None:
            # Never issued today; refused all the same (the PKCE downgrade of keycloak#26430).
            raise InvalidGrant("the code was issued without PKCE")
        if verifier is None:
            raise InvalidGrant("code_verifier is required (PKCE)")
        if not verify_code_verifier(verifier, row.code_challenge):
            raise InvalidGrant("the code_verifier does not match the code_challenge")
        resource = req.params.get("resource")
        if resource is not None and resource != row.resource:
            raise InvalidTarget("resource differs from the authorization request's")
        session_id = new_session_id()
        if not await self._codes.claim(db, row.code_hash, now, session_id):
            # Another exchange of the same code won the race: this one is the replay.
            fresh = await self._codes.find(db, code)
            await self._replayed(db, fresh or row, req)
        browser = await self._sessions.browser_of(db, row.browser_session_id)
        if browser is None:
            raise InvalidGrant("the sign-in behind this code has ended")
        authentication = Authentication(
            auth_time=row.auth_time, amr=tuple(row.amr.split()), acr=row.acr
        )
        started = await self._sessions.start(
            db,
            user_id=row.user_id,
            client_id=req.client.id,
            scope=row.scope,
            ip=req.ip,
            user_agent=req.user_agent,
            authentication=authentication,
            parent_id=browser.id,
            refresh=req.client.allows("refresh_token"),
            session_id=session_id,
        )
        access = await self._tokens.issue_access_token(
            db,
            sub=row.user_id,
            client_id=req.client.id,
            scope=row.scope,
            sid=started.session_id,
            authentication=authentication,
        )
        id_token = None
        if OPENID in row.scope.split():
            # The signing key was checked in this transaction a moment ago (the access token).
            id_token = await self._id_tokens.issue(
                None,
                sub=row.user_id,
                client_id=req.client.id,
                sid=started.session_id,
                authentication=authentication,
                access_token=access.token,
                nonce=row.nonce,
            )
        audit.record(
            db,
            audit.LOGIN,
            user_id=row.user_id,
            session_id=started.session_id,
            client_id=req.client.id,
            ip=req.ip,
            user_agent=req.user_agent,
            detail={"grant": "authorization_code", "browser_session": browser.id},
        )
        return token_response(access, started.refresh_token or None, id_token)

    async def _replayed(self, db: AsyncSession, row: AuthorizationCode, req: TokenRequest) -> None:
        """A used code again: refuse, and end what its first use started."""
        if row.session_id is not None:
            await self._sessions.end_session(
                db,
                row.session_id,
                reason="code_reuse",
                audit_type=audit.CODE_REUSE,
                ip=req.ip,
                user_agent=req.user_agent,
            )
        else:
            audit.record(
                db,
                audit.CODE_REUSE,
                user_id=row.user_id,
                client_id=req.client.id,
                ip=req.ip,
                user_agent=req.user_agent,
            )
        raise InvalidGrant(INVALID_CODE)
