"""The auth server's Redis clients: one place for how they connect and retry.

redis-py retries nothing on a pooled connection by default (`retry_on_error` is empty), so after
Redis restarts, the first command on each connection that the pool still holds fails with
"Connection closed by server". That cost the first revocations after a restart their pub/sub
delivery (they then arrived by polling, seconds later) and counted floods against a dead
connection. A short retry on a fresh connection fixes both; a Redis that is really down still
fails within about a tenth of a second, and the callers fall back (poll, database counters).
"""

from __future__ import annotations

from typing import Any


def redis_client_options() -> dict[str, Any]:
    """Keyword arguments for `redis.asyncio.Redis` (and `limits`' RedisStorage, which passes
    them on): retry twice, at once and after a few jittered milliseconds, on a broken
    connection or a timeout."""
    import redis.exceptions
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialWithJitterBackoff

    return {
        "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), 2),
        "retry_on_error": [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
    }


def open_redis(url: str | None) -> Any | None:
    """A redis.asyncio client when a URL is configured (connections are made on first use)."""
    if not url:
        return None
    # Imported only when configured: a deployment without Redis needs no Redis client code.
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(url, **redis_client_options())


__all__ = ["open_redis", "redis_client_options"]
