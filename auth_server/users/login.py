"""Checking a person's password: the one login pipeline of the password grant and the hosted
sign-in (and, later, of every step a sign-in adds after it).

What it guarantees, whoever calls it:
- the attempt is counted before the password is checked, atomically (LoginThrottle), so
  parallel guesses can't outrun the limits;
- an unknown user and a wrong password cost the same Argon2 work and raise the same error;
- Argon2 runs outside any transaction: the count is committed first (`checkpoint`), so a login
  holds no database connection, nor SQLite's write lock, while it hashes;
- a refusal while hashing is saturated is decided before any database work;
- failures and throttling are audited (refusals in aggregate).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server import audit
from auth_server.persistence.models import User
from auth_server.users.normalize import canonical_username
from auth_server.users.passwords import HashingBusy, PasswordHasher
from auth_server.users.service import find_for_login
from auth_server.users.throttle import LoginAttempt, LoginThrottle, Throttled, account_key
from shared.service.db import checkpoint


class BadCredentials(Exception):
    """The login name or the password is wrong (one error for both)."""


class LoginThrottled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after}s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Attempt:
    """Who is trying, for the throttle and the audit trail."""

    ip: str | None
    user_agent: str | None
    client_id: str | None = None
    via: str | None = None  # "hosted" for the sign-in page; None for the password grant


@dataclass(frozen=True, slots=True)
class PasswordChecked:
    """A right password. With `second_factor_due`, the attempt stays counted as a failed login
    until the factor passes (`factor_passed`): a stolen password buys no more tries than a
    guessed one (contract §8.3)."""

    user: User
    attempt: LoginAttempt  # its counts, each in the window it landed in
    second_factor_due: bool


# Asked after a right password (auth_server.factors' SecondFactorLogin.second_factor_due).
SecondFactorDue = Callable[[AsyncSession, str], Awaitable[bool]]


class PasswordLogin:
    def __init__(
        self,
        *,
        passwords: PasswordHasher,
        throttle: LoginThrottle,
        second_factor_due: SecondFactorDue | None = None,
    ) -> None:
        self._passwords = passwords
        self._throttle = throttle
        self._second_factor_due = second_factor_due

    def check_capacity(self) -> None:
        """HashingBusy now when a login would be refused for lack of hashing capacity."""
        self._passwords.check_capacity()

    async def verify(
        self, db: AsyncSession, login: str, password: str, attempt: Attempt
    ) -> PasswordChecked:
        """The user whose login name (username or email) and password these are. Raises
        BadCredentials, LoginThrottled, HashingBusy, or ThrottleUnavailable (the counters
        can't be reached: fail closed). The unit of work is committed on the way (the count);
        the caller's later writes go into a new transaction."""
        self._passwords.check_capacity()
        user = await find_for_login(db, login)
        account = account_key(user.id if user else None, canonical_username(login))
        detail = {"via": attempt.via} if attempt.via else None
        ok = due = False
        try:
            async with self._throttle.attempt(account, login, attempt.ip, db=db) as counted:
                await checkpoint(db)
                try:
                    ok, new_hash = await self._passwords.verify(
                        password, user.password_hash if user else None
                    )
                except HashingBusy:
                    await self._throttle.refund(counted, db=db)  # nothing was tried
                    raise
                if user is not None and ok:
                    # Asked only once the password is known right: an unknown user and a wrong
                    # password still cost the same.
                    due = self._second_factor_due is not None and await self._second_factor_due(
                        db, user.id
                    )
                    if not due:
                        await self._throttle.succeeded(counted, db=db)
        except Throttled as throttled:
            if throttled.report:  # in aggregate: the 1st, 2nd, 4th... refusal of a window
                audit.record(
                    db,
                    audit.LOGIN_THROTTLED,
                    user_id=user.id if user else None,
                    client_id=attempt.client_id,
                    ip=attempt.ip,
                    user_agent=attempt.user_agent,
                    detail={**(detail or {}), "refused_in_window": throttled.refused_so_far},
                )
            raise LoginThrottled(throttled.retry_after) from None
        if user is None or not ok:
            audit.record(
                db,
                audit.LOGIN_FAILED,
                user_id=user.id if user else None,
                client_id=attempt.client_id,
                ip=attempt.ip,
                user_agent=attempt.user_agent,
                detail=detail,
            )
            raise BadCredentials("the username or password is wrong")
        if new_hash is not None:  # the hashing parameters changed: upgrade the stored hash
            user.password_hash = new_hash
        return PasswordChecked(user, counted, due)

    async def factor_passed(self, db: AsyncSession, attempt: LoginAttempt) -> None:
        """The second factor passed: the login is forgiven as a right password alone would be,
        in the windows its counts landed in."""
        await self._throttle.succeeded(attempt, db=db)


__all__ = [
    "Attempt",
    "BadCredentials",
    "LoginThrottled",
    "PasswordChecked",
    "PasswordLogin",
    "SecondFactorDue",
]
