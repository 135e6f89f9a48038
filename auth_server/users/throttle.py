"""Brute-force throttling of logins, password changes and sign-ups (auth_server.ratelimit).

Every attempt is counted *before* its password is checked, atomically, under three keys, each
with its limit per AUTH_LOGIN_FAILURE_WINDOW:
- the login name as given (canonical form) and the client address: AUTH_LOGIN_FAILURE_LIMIT (5);
- the client address, across accounts: AUTH_LOGIN_IP_LIMIT (50);
- the account, across addresses: AUTH_LOGIN_ACCOUNT_LIMIT (20).
A correct password refunds its attempt (and forgives that name's failures from that address);
a login over a limit only because of this process's own logins still being checked waits for
them, so right logins at once never refuse each other. The account is the user (so username and
email count together), or the canonical login name when no user has it (unknown names are
limited too).

The first limit counts the name, not the account: counted per account, five wrong guesses at
`dave` made `dave@example.com` answer 429 from that address while any other name answered 400,
telling that the two are one account, which sign-up never tells. The account's own limit still
counts its names together (it bounds guessing at the account, whichever name is typed); that it
can still tell, once someone has failed 20 times at one name from several addresses, is the
trade docs/security/index.md states ("What the throttle tells").
IPv6 addresses are counted per /64 (one host holds a whole /64), IPv4 per address.

Sign-ups are limited per address and hour (AUTH_REGISTRATION_IP_LIMIT). The counts live in
Redis when configured (in the database while Redis is down), else in the database. When neither
can be read, logins fail closed (503): a guess never goes unthrottled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.ratelimit import (
    AttemptCounter,
    LimiterUnavailable,
    Ticket,
    address_key,
    limit_key,
)
from auth_server.settings import AuthSettings
from auth_server.users.normalize import canonical_username
from shared.service.db import checkpoint

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


def account_key(user_id: str | None, canonical_login: str) -> str:
    return f"user:{user_id}" if user_id else f"name:{canonical_login}"


# Seconds a login may wait for this process's own logins under the same limit to be checked:
# several hash times under load (a hash takes 0.1-0.3 s, more while hashing is queued).
IN_FLIGHT_WAIT = 5.0


# Logins that may wait under one limit at once; past that, a refusal is immediate. A flood of
# parallel requests must not become a crowd of waiters, each counting again.
MAX_WAITING = 32


class _Pending:
    """This process's logins holding a count under one limit's key, and the logins waiting for
    one of them to finish (each finish wakes one, the last one every one)."""

    __slots__ = ("count", "waiting")

    def __init__(self) -> None:
        self.count = 0
        self.waiting: collections.deque[asyncio.Future[None]] = collections.deque()


@dataclass(frozen=True, slots=True)
class _Limit:
    key: str
    limit: int


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """One login's counts (the pair's, the address's, the account's), each with the window it
    landed in: what `succeeded` and `refund` give back."""

    tickets: tuple[Ticket, ...]


class LoginThrottle:
    def __init__(self, settings: AuthSettings, counter: AttemptCounter) -> None:
        self._counter = counter
        self._window = settings.login_failure_window
        self._pair_limit = settings.login_failure_limit
        self._ip_limit = settings.login_ip_limit
        self._account_limit = settings.login_account_limit
        self._registration_limit = settings.registration_ip_limit
        self._pending: dict[str, _Pending] = {}

    def _limits(self, account: str, login: str, ip: str | None) -> list[_Limit]:
        where = address_key(ip)
        return [
            _Limit(limit_key("login-pair", canonical_username(login), where), self._pair_limit),
            _Limit(limit_key("login-ip", where), self._ip_limit),
            _Limit(limit_key("login-account", account), self._account_limit),
        ]

    @contextlib.asynccontextmanager
    async def attempt(
        self, account: str, login: str, ip: str | None, *, db: AsyncSession
    ) -> AsyncIterator[LoginAttempt]:
        """Count a login attempt before its password is checked; Throttled when any limit is
        reached (the refused attempt is not counted as a guess). `account`: `account_key`;
        `login`: the name the login gave. Check the password inside the
        block, and call `succeeded` or `refund` with the attempt there: leaving the block lets
        logins that wait for this one try again.

        A login over a limit only because of this process's own logins of the same account
        (or from the same address) still being checked waits for them, up to IN_FLIGHT_WAIT:
        a right password gives its count back, so a dozen right logins at once all succeed,
        while wrong ones keep theirs and the waiters are then refused. (Logins in flight at
        other replicas are not waited for: those refusals stay immediate.)"""
        limits = self._limits(account, login, ip)
        tickets = await self._count(limits, db)
        try:
            yield LoginAttempt(tickets)
        finally:
            for limit in limits:
                self._release(limit)

    def _hold(self, limit: _Limit) -> None:
        """This process holds one more count under `limit` (no await since its count)."""
        self._pending.setdefault(limit.key, _Pending()).count += 1

    def _release(self, limit: _Limit) -> None:
        pending = self._pending[limit.key]
        pending.count -= 1
        # Wake one waiting login (it counts again); when none is left in flight, every one:
        # nothing else would wake them, and each then decides at once.
        while pending.waiting:
            waiter = pending.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if pending.count:
                    break
        self._forget_if_idle(limit.key, pending)

    def _forget_if_idle(self, key: str, pending: _Pending) -> None:
        """Drop `pending` once no login holds a count under `key` or waits there."""
        if not pending.count and not pending.waiting and self._pending.get(key) is pending:
            del self._pending[key]

    async def _count(self, limits: list[_Limit], db: AsyncSession) -> tuple[Ticket, ...]:
        """Count the attempt under every limit (each count held: `_release` it once the
        password is checked). While a limit refuses it and this process holds counts under that
        limit for logins being checked, wait for one of them to finish, then count again."""
        deadline = time.monotonic() + IN_FLIGHT_WAIT
        while True:
            refused, tickets = await self._count_once(limits, db)
            if refused is None:
                return tickets
            pending = self._pending.get(refused.key)
            remaining = deadline - time.monotonic()
            if (
                pending is None
                or not pending.count
                or remaining <= 0
                or len(pending.waiting) >= MAX_WAITING
            ):
                result = await self._counter.refuse(refused.key, self._window, db=db)
                raise Throttled(result.wait, result.refused_so_far)
            waiter = asyncio.get_running_loop().create_future()
            pending.waiting.append(waiter)
            try:
                # Nothing held while waiting: on SQLite the counts were written in the
                # request's transaction, whose write lock the logins waited for need.
                await checkpoint(db)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, remaining)
            finally:
                if not waiter.done():
                    waiter.cancel()
                with contextlib.suppress(ValueError):
                    pending.waiting.remove(waiter)
                self._forget_if_idle(refused.key, pending)

    async def _count_once(
        self, limits: list[_Limit], db: AsyncSession
    ) -> tuple[_Limit | None, tuple[Ticket, ...]]:
        """Count the attempt under every limit, holding each count: (None, the counts), or
        (the limit that refused it, nothing: the earlier counts given back and released)."""
        held: list[_Limit] = []
        tickets: list[Ticket] = []
        try:
            for limit in limits:
                result = await self._counter.attempt(
                    limit.key, limit.limit, self._window, db=db, record_refusal=False
                )
                if not result.allowed or result.ticket is None:
                    for ticket in tickets:
                        await self._counter.refund(ticket, db=db)
                    return limit, ()
                self._hold(limit)
                held.append(limit)
                tickets.append(result.ticket)
            held = []  # all held: the caller releases them
            return None, tuple(tickets)
        finally:
            for limit in held:
                self._release(limit)

    async def refund(self, attempt: LoginAttempt, *, db: AsyncSession) -> None:
        """Take back an attempt that tried no password (the hashing pool was full)."""
        for ticket in attempt.tickets:
            await self._counter.refund(ticket, db=db)

    async def succeeded(self, attempt: LoginAttempt, *, db: AsyncSession) -> None:
        """The password was right: the attempt was no guess, and this name's earlier failures
        from this address are forgiven (a typo or two). The address's and the account's counts
        only lose this attempt: elsewhere, guessing may be going on."""
        pair, *others = attempt.tickets
        await self._counter.clear(pair.key, db=db)
        for ticket in others:
            await self._counter.refund(ticket, db=db)

    async def unlock(self, account: str, names: Iterable[str] = (), ip: str | None = None) -> None:
        """Forget an account's failures (and, with `ip`, that address's and those of each of
        the account's login `names` from it): `users unlock`."""
        await self._counter.clear(limit_key("login-account", account))
        if ip is not None:
            where = address_key(ip)
            for name in names:
                await self._counter.clear(limit_key("login-pair", canonical_username(name), where))
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
    "LoginAttempt",
    "LoginThrottle",
    "ThrottleUnavailable",
    "Throttled",
    "account_key",
    "address_key",
]
