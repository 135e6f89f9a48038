"""Authorization codes (RFC 6749 §4.1.2): 256 random bits, stored only as their SHA-256, single
use, valid at most CODE_TTL seconds, bound to the client, the redirect URI, the PKCE challenge
and the resource of their request, and to the browser session that signed the person in."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.oauth.authorize import AuthorizationRequest
from auth_server.persistence.models import AuthorizationCode
from auth_server.sessions.service import BrowserSession
from shared.service.db import utcnow

# RFC 6749 §4.1.2 recommends at most 10 minutes; contract §8.3 says at most 60 s. A client
# exchanges its code within a second of receiving it.
CODE_TTL = 60
MAX_CODE_LENGTH = 128


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class AuthorizationCodes:
    def __init__(self, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._clock = clock

    async def issue(
        self, db: AsyncSession, request: AuthorizationRequest, browser: BrowserSession
    ) -> str:
        """A new code for `request`, signed in by `browser`; returned once, stored hashed."""
        now = self._clock()
        code = secrets.token_urlsafe(32)
        auth = browser.authentication
        db.add(
            AuthorizationCode(
                code_hash=hash_code(code),
                client_id=request.client_id,
                user_id=browser.user_id,
                browser_session_id=browser.id,
                redirect_uri=request.redirect_uri,
                scope=request.scope,
                code_challenge=request.code_challenge,
                nonce=request.nonce,
                resource=request.resource,
                auth_time=auth.auth_time,
                amr=auth.amr_text,
                acr=auth.acr,
                created_at=now,
                expires_at=now + dt.timedelta(seconds=CODE_TTL),
            )
        )
        await db.flush()
        return code

    async def find(self, db: AsyncSession, code: str) -> AuthorizationCode | None:
        """The code's row, read afresh (never from the session's identity map: a racing
        exchange may have changed it)."""
        if not code or len(code) > MAX_CODE_LENGTH:
            return None
        result = await db.execute(
            select(AuthorizationCode)
            .where(AuthorizationCode.code_hash == hash_code(code))
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def claim(
        self, db: AsyncSession, code_hash: str, now: dt.datetime, session_id: str
    ) -> bool:
        """Mark the code used if nobody has, naming the session its exchange starts (a replay
        ends it): of racing exchanges exactly one gets True (the conditional UPDATE waits for a
        concurrent winner's commit, then matches nothing)."""
        result = await db.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.code_hash == code_hash, AuthorizationCode.used_at.is_(None))
            .values(used_at=now, session_id=session_id)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


__all__ = ["CODE_TTL", "AuthorizationCodes", "hash_code"]
