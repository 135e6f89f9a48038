"""The resource owner password credentials grant (RFC 6749 §4.3).

A wrong password and an unknown user give the same error, after the same Argon2 work.

An account with a second factor answers `mfa_required` (contract §8.3) unless the form carries
`otp`, a TOTP or recovery code. That answer proves the password was right, so the attempt stays
counted as a failed login until the factor passes: a stolen password buys no more tries than a
guessed one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server import audit
from auth_server.factors.actor import Actor
from auth_server.factors.errors import FactorLocked, FactorThrottled, WrongCode
from auth_server.factors.login import SecondFactorLogin
from auth_server.oauth.errors import (
    InvalidGrant,
    InvalidRequest,
    MfaRequired,
    SlowDown,
    TemporarilyUnavailable,
)
from auth_server.oauth.grants.base import TokenRequest
from auth_server.oauth.scopes import grant_scope, parse_scope, user_scopes
from auth_server.oauth.tokens import TokenIssuer, token_response
from auth_server.sessions.authentication import (
    OTP,
    PWD,
    Authentication,
    authentication_for,
)
from auth_server.sessions.service import SessionService
from auth_server.users.normalize import canonical_username
from auth_server.users.passwords import HashingBusy, PasswordHasher
from auth_server.users.service import find_for_login
from auth_server.users.throttle import LoginAttempt, LoginThrottle, Throttled, account_key
from shared.service.db import checkpoint, utcnow

BAD_CREDENTIALS = "the username or password is wrong"
WRONG_CODE = "the one-time code is wrong or was used already"


class PasswordGrant:
    def __init__(
        self,
        *,
        passwords: PasswordHasher,
        throttle: LoginThrottle,
        sessions: SessionService,
        tokens: TokenIssuer,
        factors: SecondFactorLogin | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._passwords = passwords
        self._throttle = throttle
        self._sessions = sessions
        self._tokens = tokens
        self._factors = factors
        self._clock = clock  # the sign-in's `auth_time`

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
        mfa_due = False
        try:
            # Counted before the password is checked: parallel guesses can't outrun the limit.
            async with self._throttle.attempt(account, login, req.ip, db=db) as attempt:
                # The attempt is counted and committed; Argon2 runs outside any transaction, so
                # a login holds no database connection (nor SQLite's write lock) while it hashes.
                await checkpoint(db)
                try:
                    ok, new_hash = await self._passwords.verify(
                        password, user.password_hash if user else None
                    )
                except HashingBusy as busy:
                    await self._throttle.refund(attempt, db=db)  # nothing was tried
                    raise TemporarilyUnavailable(busy.retry_after) from None
                if user is not None and ok:
                    # Asked only once the password is known right: an unknown user and a wrong
                    # password still cost the same (no extra query for an existing account).
                    mfa_due = self._factors is not None and await self._factors.second_factor_due(
                        db, user.id
                    )
                    if not mfa_due:
                        await self._throttle.succeeded(attempt, db=db)
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
        authentication = (
            await self._second_factor(db, req, user.id, attempt)
            if mfa_due
            else authentication_for(self._clock(), (PWD,))
        )

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
            db,
            sub=user.id,
            client_id=req.client.id,
            scope=scope,
            sid=sid,
            authentication=authentication,
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

    async def _second_factor(
        self, db: AsyncSession, req: TokenRequest, user_id: str, attempt: LoginAttempt
    ) -> Authentication:
        """The password was right and a second factor is due: `otp` must pass. Until it does,
        the password's attempt stays counted; once it does, the login is forgiven as a right
        password alone would be. A wrong code counts only in the factor throttle."""
        assert self._factors is not None
        actor = Actor(req.ip, req.user_agent, client_id=req.client.id)
        code = req.params.get("otp")
        if not code:
            audit.record(
                db,
                audit.LOGIN_MFA_REQUIRED,
                user_id=user_id,
                client_id=req.client.id,
                ip=req.ip,
                user_agent=req.user_agent,
            )
            raise MfaRequired("a second factor is required: send a TOTP or recovery code as otp")
        try:
            await self._factors.verify_code(db, user_id, code, actor)
        except WrongCode:
            raise InvalidGrant(WRONG_CODE) from None
        except FactorLocked:
            raise InvalidGrant(
                "this kind of code is locked after too many failures; use another factor"
            ) from None
        except FactorThrottled as throttled:
            raise SlowDown(throttled.retry_after) from None
        await self._throttle.succeeded(attempt, db=db)  # in the window it was counted in
        return authentication_for(self._clock(), (PWD, OTP))
