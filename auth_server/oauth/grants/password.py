"""The resource owner password credentials grant (RFC 6749 §4.3), for first-party clients only.

RFC 9700 §2.4 says this grant "MUST NOT be used", and OAuth 2.1 drops it: the client sees the
password. It stays for the clients that are ours (`web`, the CLI and curl examples of the
README), and the password check is the hosted sign-in's own (auth_server.users.login): the same
throttle, the same timing for an unknown user and a wrong password, Argon2 outside any
transaction.

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
    UnauthorizedClient,
)
from auth_server.oauth.grants.base import TokenRequest
from auth_server.oauth.scopes import grant_scope, parse_scope, user_scopes
from auth_server.oauth.tokens import TokenIssuer, token_response
from auth_server.sessions.authentication import OTP, PWD, Authentication, authentication_for
from auth_server.sessions.service import SessionService
from auth_server.users.login import (
    Attempt,
    BadCredentials,
    LoginThrottled,
    PasswordChecked,
    PasswordLogin,
)
from auth_server.users.passwords import HashingBusy
from shared.service.db import utcnow

BAD_CREDENTIALS = "the username or password is wrong"
WRONG_CODE = "the one-time code is wrong or was used already"


class PasswordGrant:
    def __init__(
        self,
        *,
        login: PasswordLogin,
        sessions: SessionService,
        tokens: TokenIssuer,
        factors: SecondFactorLogin | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._login = login
        self._sessions = sessions
        self._tokens = tokens
        self._factors = factors
        self._clock = clock  # the sign-in's `auth_time`

    async def __call__(self, db: AsyncSession, req: TokenRequest) -> dict[str, Any]:
        if not req.client.first_party:
            # Contract §8.1: a third party never sees a person's password (RFC 9700 §2.4).
            raise UnauthorizedClient("the password grant is for first-party clients only")
        login, password = req.params.get("username"), req.params.get("password")
        if not login or password is None:
            raise InvalidRequest("username and password are required")
        requested = parse_scope(req.params.get("scope"))
        attempt = Attempt(req.ip, req.user_agent, client_id=req.client.id)
        try:
            checked = await self._login.verify(db, login, password, attempt)
        except HashingBusy as busy:
            raise TemporarilyUnavailable(busy.retry_after) from None
        except LoginThrottled as throttled:
            raise SlowDown(throttled.retry_after) from None
        except BadCredentials:
            raise InvalidGrant(BAD_CREDENTIALS) from None
        user = checked.user
        authentication = (
            await self._second_factor(db, req, checked)
            if checked.second_factor_due
            else authentication_for(self._clock(), (PWD,))
        )

        allowed = frozenset(req.client.scopes.split()) & user_scopes(user.is_admin)
        scope = grant_scope(requested, allowed)
        refresh_token = sid = None
        if req.client.allows("refresh_token"):
            started = await self._sessions.start(
                db,
                user_id=user.id,
                client_id=req.client.id,
                scope=scope,
                ip=req.ip,
                user_agent=req.user_agent,
                authentication=authentication,
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
        self, db: AsyncSession, req: TokenRequest, checked: PasswordChecked
    ) -> Authentication:
        """The password was right and a second factor is due: `otp` must pass. Until it does,
        the password's attempt stays counted; once it does, the login is forgiven as a right
        password alone would be. A wrong code counts only in the factor throttle."""
        assert self._factors is not None
        user_id = checked.user.id
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
        await self._login.factor_passed(db, checked.attempt)  # in its windows
        return authentication_for(self._clock(), (PWD, OTP))
