"""The throttle of wrong second-factor codes, apart from the password's (contract §8.5):
- per account: AUTH_FACTOR_FAILURE_LIMIT per AUTH_LOGIN_FAILURE_WINDOW;
- per client address across accounts: AUTH_FACTOR_IP_LIMIT per window (someone holding many
  passwords can't try codes on every account from one place; larger than the account's limit,
  so that an office behind one address isn't refused for its neighbours' typos).

It counts with the password throttle's own machinery (auth_server.ratelimit.AttemptCounter, on
Redis or the database, atomic), before each code is checked, so N parallel wrong codes check at
most the limit's worth; a right code is refunded and clears the account's count. Its keys are
its own (`factor-*`): a wrong code never counts toward the password lockout, and no factor ever
clears a password count (auth_server.users.throttle keeps those).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.factors.errors import FactorThrottled
from auth_server.ratelimit import AttemptCounter, Ticket, limit_key
from auth_server.settings import AuthSettings
from auth_server.users.throttle import address_key


@dataclass(frozen=True, slots=True)
class FactorAttempt:
    """One code's counts (the account's, the address's), each with the window it landed in:
    what `succeeded` and `refund` give back, in that window only."""

    tickets: tuple[Ticket, ...]


class FactorThrottle:
    def __init__(self, settings: AuthSettings, counter: AttemptCounter) -> None:
        self._counter = counter
        self._window = settings.login_failure_window
        self._account_limit = settings.factor_failure_limit
        self._ip_limit = settings.factor_ip_limit

    def _limits(self, user_id: str, ip: str | None) -> list[tuple[str, int]]:
        return [
            (limit_key("factor-account", user_id), self._account_limit),
            (limit_key("factor-ip", address_key(ip)), self._ip_limit),
        ]

    async def attempt(self, user_id: str, ip: str | None, *, db: AsyncSession) -> FactorAttempt:
        """Count a code before it is checked; FactorThrottled when a limit is reached (the
        refused attempt is then not counted as a guess). LimiterUnavailable when the counts
        can't be reached: the caller fails closed."""
        tickets: list[Ticket] = []
        for key, limit in self._limits(user_id, ip):
            result = await self._counter.attempt(key, limit, self._window, db=db)
            if not result.allowed or result.ticket is None:
                for earlier in tickets:
                    await self._counter.refund(earlier, db=db)
                raise FactorThrottled(result.wait, result.refused_so_far)
            tickets.append(result.ticket)
        return FactorAttempt(tuple(tickets))

    async def succeeded(self, attempt: FactorAttempt, *, db: AsyncSession) -> None:
        """A right code: the account's earlier wrong codes are forgiven; the address only gets
        this attempt back (elsewhere, guessing may be going on)."""
        account, address = attempt.tickets
        await self._counter.clear(account.key, db=db)
        await self._counter.refund(address, db=db)

    async def refund(self, attempt: FactorAttempt, *, db: AsyncSession) -> None:
        """Take back an attempt that checked no code (the factor was locked)."""
        for ticket in attempt.tickets:
            await self._counter.refund(ticket, db=db)


__all__ = ["FactorAttempt", "FactorThrottle"]
