"""Limits on refresh and revocation (contract: AUTH_SESSION_RATE_LIMIT): per session, and per
client and address. A flood of revocations of one's own tokens must not fill a resource
server's denylist, and a legitimate client refreshes about once per access-token lifetime.

These limits fail open when their counts can't be read (Redis down): refreshing must keep
working through a Redis outage, and a resource server's denylist refuses rather than forgets
when it is full, so a flood costs availability there, never a revoked token.
"""

from __future__ import annotations

import logging

from limits import RateLimitItemPerMinute

from auth_server.oauth.errors import SlowDown
from auth_server.ratelimit import LimiterUnavailable, RateLimiter
from auth_server.settings import AuthSettings

log = logging.getLogger("auth_server.oauth.limits")


class SessionLimits:
    def __init__(self, settings: AuthSettings, limiter: RateLimiter) -> None:
        self._limiter = limiter
        self._session = RateLimitItemPerMinute(settings.session_rate_limit)
        self._client = RateLimitItemPerMinute(settings.client_rate_limit)

    async def _hit(self, item: RateLimitItemPerMinute, *parts: str) -> None:
        try:
            wait = await self._limiter.hit(item, *parts)
        except LimiterUnavailable:
            return  # fail open (see the module's docstring)
        if wait is not None:
            raise SlowDown(wait)

    async def session(self, session_id: str) -> None:
        """Count a refresh or revocation of the session; SlowDown (429) when over the limit."""
        await self._hit(self._session, "session", session_id)

    async def client(self, client_id: str, ip: str | None) -> None:
        """Count a refresh or revocation by this client from this address."""
        await self._hit(self._client, "client", client_id, ip or "unknown")


__all__ = ["SessionLimits"]
