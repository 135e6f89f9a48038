"""The resource owner password credentials grant (RFC 6749 §4.3).

A wrong password and an unknown user give the same error, after the same Argon2 work.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server import audit
from auth_server.oauth.errors import (
    InvalidGrant,
    InvalidRequest,
    SlowDown,
    TemporarilyUnavailable,
)
from auth_server.oauth.grants.base import TokenRequest
from auth_server.oauth.scopes import grant_scope, parse_scope, user_scopes
from auth_server.oauth.tokens import TokenIssuer, token_response
from auth_server.sessions.service import SessionService
from auth_server.users.normalize import canonical_username
from auth_server.users.passwords import HashingBusy, PasswordHasher
from auth_server.users.service import find_for_login
from auth_server.users.throttle import LoginThrottle, Throttled, account_key
from shared.service.db import checkpoint

BAD_CREDENTIALS = "the username or password is wrong"


class PasswordGrant:
    def __init__(
        self,
        *,
        passwords: PasswordHasher,
        throttle: LoginThrottle,
        sessions: SessionService,
        tokens: TokenIssuer,
    ) -> None:
        self._passwords = passwords
        self._throttle = throttle
        self._sessions = sessions
        self._tokens = tokens

    async def __call__(self, db: AsyncSession, req: TokenRequest) -> dict[str, Any]:
        login, password = req.params.get("username"), req.params.get("password")
        if not login or password is None:
            raise InvalidRequest("username and password are required")
        requested = parse_scope(req.params.get("scope"))
        try:
            # Refused before any database work when hashing is saturated: during a login storm
            # the refusals are most of the requests, and each must cost the event loop little.
            self._passwords.check_capacity()
        except HashingBusy as busy:
            raise TemporarilyUnavailable(busy.retry_after) from None
        user = await find_for_login(db, login)
        account = account_key(user.id if user else None, canonical_username(login))
        try:
            # Counted before the password is checked: parallel guesses can't outrun the limit.
            async with self._throttle.attempt(account, req.ip, db=db):
                # The attempt is counted and committed; Argon2 runs outside any transaction, so
                # a login holds no database connection (nor SQLite's write lock) while it hashes.
                await checkpoint(db)
                try:
                    ok, new_hash = await self._passwords.verify(
                        password, user.password_hash if user else None
                    )
                except HashingBusy as busy:
                    await self._throttle.refund(account, req.ip, db=db)  # nothing was tried
                    raise TemporarilyUnavailable(busy.retry_after) from None
                if user is not None and ok:
                    await self._throttle.succeeded(account, req.ip, db=db)
        except Throttled as throttled:
            if throttled.report:  # in aggregate: the 1st, 2nd, 4th... refusal of a window
                audit.record(
                    db,
                    audit.LOGIN_THROTTLED,
                    user_id=user.id if user else None,
                    client_id=req.client.id,
                    ip=req.ip,
                    user_agent=req.user_agent,
                    detail={"refused_in_window": throttled.refused_so_far},
                )
            raise SlowDown(throttled.retry_after) from None
        if user is None or not ok:
            audit.record(
                db,
                audit.LOGIN_FAILED,
                user_id=user.id if user else None,
                client_id=req.client.id,
                ip=req.ip,
                user_agent=req.user_agent,
            )
            raise InvalidGrant(BAD_CREDENTIALS)
        if new_hash is not None:  # the hashing parameters changed: upgrade the stored hash
            user.password_hash = new_hash

        allowed = frozenset(req.client.scopes.split()) & user_scopes(user.is_admin)
        scope = grant_scope(requested, allowed)
        refresh_token = sid = None
        if "refresh_token" in req.client.grant_types.split():
            started = await self._sessions.start(
                db,
                user_id=user.id,
                client_id=req.client.id,
                scope=scope,
                ip=req.ip,
                user_agent=req.user_agent,
            )
            refresh_token, sid = started.refresh_token, started.session_id
        access = await self._tokens.issue_access_token(
            db, sub=user.id, client_id=req.client.id, scope=scope, sid=sid
        )
        audit.record(
            db,
            audit.LOGIN,
            user_id=user.id,
            session_id=sid,
            client_id=req.client.id,
            ip=req.ip,
            user_agent=req.user_agent,
        )
        return token_response(access, refresh_token)
