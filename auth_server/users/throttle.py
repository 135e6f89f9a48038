"""Brute-force throttling with the `limits` library (moving windows).

Two limits on failed logins: per (username, client address) and per client address across all
usernames. Registration has a per-address hourly limit. Storage is in memory, or Redis when
AUTH_REDIS_URL is set, so every replica sees the same counts.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator

from limits import RateLimitItemPerHour, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from auth_server.settings import AuthSettings

log = logging.getLogger("auth_server.throttle")


def _key(*parts: str) -> str:
    # Hash the identifiers: Redis keys then hold no usernames or addresses in clear.
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


class ThrottleUnavailable(Exception):
    """The shared counters can't be read (Redis is down). Callers fail closed: 503, not a guess."""


@contextlib.asynccontextmanager
async def _storage_errors() -> AsyncIterator[None]:
    try:
        yield
    except Exception as exc:
        log.warning("rate-limit storage unavailable: %s", exc)
        raise ThrottleUnavailable(str(exc)) from None


class LoginThrottle:
    def __init__(self, settings: AuthSettings) -> None:
        self._storage: Storage
        if settings.redis_url:
            self._storage = RedisStorage(
                "async+" + settings.redis_url,
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix=f"{settings.redis_prefix}:limits",
            )
        else:
            self._storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        window = settings.login_failure_window
        self._pair = RateLimitItemPerSecond(settings.login_failure_limit, window)
        self._ip = RateLimitItemPerSecond(settings.login_ip_limit, window)
        self._registration = RateLimitItemPerHour(settings.registration_ip_limit, 1)

    async def login_blocked(self, username: str, ip: str) -> int | None:
        """Seconds to wait if this (username, address) or this address is over its limit."""
        waits = []
        async with _storage_errors():
            for item, key in ((self._pair, _key("pair", username, ip)), (self._ip, _key("ip", ip))):
                if not await self._limiter.test(item, key):
                    reset, _ = await self._limiter.get_window_stats(item, key)
                    waits.append(max(1, int(reset - time.time()) + 1))
        return max(waits) if waits else None

    async def record_failure(self, username: str, ip: str) -> None:
        async with _storage_errors():
            await self._limiter.hit(self._pair, _key("pair", username, ip))
            await self._limiter.hit(self._ip, _key("ip", ip))

    async def clear(self, username: str, ip: str) -> None:
        """A successful login forgives that pair's failures (not the address's)."""
        async with _storage_errors():
            await self._limiter.clear(self._pair, _key("pair", username, ip))

    async def registration_allowed(self, ip: str) -> int | None:
        """None if the sign-up may go ahead (and counts it), else the seconds to wait."""
        key = _key("register", ip)
        async with _storage_errors():
            if await self._limiter.hit(self._registration, key):
                return None
            reset, _ = await self._limiter.get_window_stats(self._registration, key)
        return max(1, int(reset - time.time()) + 1)

    async def aclose(self) -> None:
        close = getattr(self._storage, "reset", None)
        if isinstance(self._storage, MemoryStorage) and close is not None:
            await close()
