"""Brute-force throttling of logins, password changes and sign-ups (auth_server.ratelimit).

Every attempt is counted *before* its password is checked, atomically, under three keys, each
with its limit per AUTH_LOGIN_FAILURE_WINDOW:
- the account and the client address: AUTH_LOGIN_FAILURE_LIMIT (5);
- the client address, across accounts: AUTH_LOGIN_IP_LIMIT (50);
- the account, across addresses: AUTH_LOGIN_ACCOUNT_LIMIT (20).
A correct password refunds its attempt (and forgives that account's failures from that address).
The account is the user (so username and email count
together), or the canonical login name when no user has it (unknown names are limited too).
IPv6 addresses are counted per /64 (one host holds a whole /64), IPv4 per address.

Sign-ups are limited per address and hour (AUTH_REGISTRATION_IP_LIMIT). The counts live in
Redis when configured (in the database while Redis is down), else in the database. When neither
can be read, logins fail closed (503): a guess never goes unthrottled.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.ratelimit import AttemptCounter, LimiterUnavailable, limit_key
from auth_server.settings import AuthSettings

ThrottleUnavailable = LimiterUnavailable


class Throttled(Exception):
    """Too many attempts: wait `retry_after` seconds."""

    def __init__(self, retry_after: int, refused_so_far: int) -> None:
        super().__init__(f"retry after {retry_after}s")
        self.retry_after = retry_after
        self.refused_so_far = refused_so_far

    @property
    def report(self) -> bool:
        """Refusals are audited in aggregate: the 1st, 2nd, 4th, 8th... of a window."""
        n = self.refused_so_far
        return n > 0 and n & (n - 1) == 0


def address_key(ip: str | None) -> str:
    """What an address is counted as: IPv6 by its /64, IPv4 by itself."""
    if not ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def account_key(user_id: str | None, canonical_login: str) -> str:
    return f"user:{user_id}" if user_id else f"name:{canonical_login}"


@dataclass(frozen=True, slots=True)
class _Limit:
    key: str
    limit: int


class LoginThrottle:
    def __init__(self, settings: AuthSettings, counter: AttemptCounter) -> None:
        self._counter = counter
        self._window = settings.login_failure_window
        self._pair_limit = settings.login_failure_limit
        self._ip_limit = settings.login_ip_limit
        self._account_limit = settings.login_account_limit
        self._registration_limit = settings.registration_ip_limit

    def _limits(self, account: str, ip: str | None) -> list[_Limit]:
        where = address_key(ip)
        return [
            _Limit(limit_key("login-pair", account, where), self._pair_limit),
            _Limit(limit_key("login-ip", where), self._ip_limit),
            _Limit(limit_key("login-account", account), self._account_limit),
        ]

    async def attempt(self, account: str, ip: str | None, *, db: AsyncSession) -> None:
        """Count a login attempt before its password is checked; Throttled when any limit is
        reached (the refused attempt is not counted as a guess)."""
        counted: list[_Limit] = []
        for limit in self._limits(account, ip):
            result = await self._counter.attempt(limit.key, limit.limit, self._window, db=db)
            if not result.allowed:
                for earlier in counted:
                    await self._counter.refund(earlier.key, self._window, db=db)
                raise Throttled(result.wait, result.refused_so_far)
            counted.append(limit)

    async def refund(self, account: str, ip: str | None, *, db: AsyncSession) -> None:
        """Take back an attempt that tried no password (the hashing pool was full)."""
        for limit in self._limits(account, ip):
            await self._counter.refund(limit.key, self._window, db=db)

    async def succeeded(self, account: str, ip: str | None, *, db: AsyncSession) -> None:
        """The password was right: the attempt was no guess, and this account's earlier failures
        from this address are forgiven (a typo or two). The address's and the account's counts
        only lose this attempt: elsewhere, guessing may be going on."""
        pair, *others = self._limits(account, ip)
        await self._counter.clear(pair.key, db=db)
        for limit in others:
            await self._counter.refund(limit.key, self._window, db=db)

    async def unlock(self, account: str, ip: str | None = None) -> None:
        """Forget an account's failures (and, with `ip`, that address's): `users unlock`."""
        await self._counter.clear(limit_key("login-account", account))
        if ip is not None:
            where = address_key(ip)
            await self._counter.clear(limit_key("login-pair", account, where))
            await self._counter.clear(limit_key("login-ip", where))

    async def aclose(self) -> None:
        await self._counter.aclose()

    async def registration(self, ip: str | None, *, db: AsyncSession) -> None:
        """Count a sign-up; Throttled past the hourly limit of the address."""
        key = limit_key("register", address_key(ip))
        result = await self._counter.attempt(key, self._registration_limit, 3600, db=db)
        if not result.allowed:
            raise Throttled(result.wait, result.refused_so_far)


__all__ = [
    "LoginThrottle",
    "ThrottleUnavailable",
    "Throttled",
    "account_key",
    "address_key",
]
