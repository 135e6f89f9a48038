"""Limits on refresh and revocation (contract: AUTH_SESSION_RATE_LIMIT): per session, and per
client and address (IPv6 per /64, as every limit counts addresses: `address_key`). A flood of
revocations of one's own tokens must not fill a resource server's denylist, and a legitimate
client refreshes about once per access-token lifetime.

These limits fail open when their counts can't be read (Redis down): refreshing must keep
working through a Redis outage, and a resource server's denylist refuses rather than forgets
when it is full, so a flood costs availability there, never a revoked token.
"""

from __future__ import annotations

import logging

from limits import RateLimitItemPerMinute

from auth_server.oauth.errors import SlowDown
from auth_server.ratelimit import LimiterUnavailable, RateLimiter, address_key
from auth_server.settings import AuthSettings

log = logging.getLogger("auth_server.oauth.limits")


# A limit and the parts of its counter's key, as RateLimiter.hit_all takes them.
Limit = tuple[RateLimitItemPerMinute, tuple[str, ...]]


class SessionLimits:
    def __init__(self, settings: AuthSettings, limiter: RateLimiter) -> None:
        self._limiter = limiter
        self._session_limit = RateLimitItemPerMinute(settings.session_rate_limit)
        self._client_limit = RateLimitItemPerMinute(settings.client_rate_limit)

    def _client(self, client_id: str, ip: str | None) -> Limit:
        return self._client_limit, ("client", client_id, address_key(ip))

    def _session(self, session_id: str) -> Limit:
        return self._session_limit, ("session", session_id)

    async def _hit(self, *limits: Limit) -> None:
        try:
            wait = await self._limiter.hit_all(*limits)
        except LimiterUnavailable:
            return  # fail open (see the module's docstring)
        if wait is not None:
            raise SlowDown(wait)

    async def session(self, session_id: str) -> None:
        """Count a refresh or revocation of the session; SlowDown (429) when over the limit."""
        await self._hit(self._session(session_id))

    async def client(self, client_id: str, ip: str | None) -> None:
        """Count a refresh or revocation by this client from this address."""
        await self._hit(self._client(client_id, ip))

    async def client_and_session(self, client_id: str, ip: str | None, session_id: str) -> None:
        """`client`, then `session` if the client had room: both in one round trip (a refresh
        counts both on every request)."""
        await self._hit(self._client(client_id, ip), self._session(session_id))

    def check_client(self, client_id: str, ip: str | None) -> None:
        """SlowDown when this replica already saw the client over its limit in this window;
        costs no round trip, so a flood is refused before any database work."""
        item, parts = self._client(client_id, ip)
        wait = self._limiter.refused(item, *parts)
        if wait is not None:
            raise SlowDown(wait)


__all__ = ["SessionLimits"]
