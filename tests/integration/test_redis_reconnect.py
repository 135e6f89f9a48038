"""After Redis restarts, the connections the auth server's pools still hold are dead. redis-py
retries nothing by default, so the first command on each failed with "Connection closed by
server": the cluster fault test saw the first revocations after a Redis outage arrive only by
polling, seconds later. A restart is simulated here by killing this test's connections (named
through the URL), nobody else's."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator

import pytest
from limits import parse

from auth_server.persistence.models import Revocation
from auth_server.ratelimit import RateLimiter, open_storage
from auth_server.redis_client import open_redis
from auth_server.revocations import RevocationKind, RevocationPublisher
from auth_server.settings import AuthSettings


@pytest.fixture
def named_url(redis_url: str, redis_prefix: str) -> str:
    return f"{redis_url}{'&' if '?' in redis_url else '?'}client_name={redis_prefix}"


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[object]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def kill_connections_named(admin: object, name: str) -> int:
    killed = 0
    for entry in await admin.client_list():  # type: ignore[attr-defined]
        if entry.get("name") == name:
            killed += await admin.client_kill_filter(_id=entry["id"])  # type: ignore[attr-defined]
    return killed


def revocation(number: int) -> Revocation:
    now = dt.datetime.now(dt.UTC)
    return Revocation(
        id=number,
        kind=RevocationKind.SID.value,
        value=f"sid-{number}",
        not_before=None,
        created_at=now,
        expires_at=now + dt.timedelta(minutes=5),
    )


async def test_a_revocation_published_after_a_restart_is_delivered(
    admin: object, named_url: str, redis_prefix: str
) -> None:
    channel = f"{redis_prefix}:revocations"
    pubsub = admin.pubsub()  # type: ignore[attr-defined]
    await pubsub.subscribe(channel)
    confirmation = await pubsub.get_message(timeout=2)
    assert confirmation is not None and confirmation["type"] == "subscribe"
    redis = open_redis(named_url)
    publisher = RevocationPublisher(redis, channel)

    async def received() -> list[str]:
        values = []
        while message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5):
            values.append(json.loads(message["data"])["value"])
        return values

    try:
        await publisher.publish([revocation(1)])
        assert await received() == ["sid-1"]  # the pool now holds a connection
        assert await kill_connections_named(admin, redis_prefix) >= 1

        await publisher.publish([revocation(2)])  # logs and drops it when it is not retried
        assert await received() == ["sid-2"], "the first publish after the restart was lost"
    finally:
        await pubsub.aclose()
        assert redis is not None
        await redis.aclose()


async def test_the_flood_limiter_counts_on_after_a_restart(
    admin: object, named_url: str, redis_prefix: str
) -> None:
    settings = AuthSettings(  # type: ignore[call-arg]
        _env_file=None, redis_url=named_url, redis_prefix=redis_prefix
    )
    limiter = RateLimiter(open_storage(settings))
    two_a_minute = parse("2/minute")
    try:
        assert await limiter.hit(two_a_minute, "client", "1.2.3.4") is None
        assert await kill_connections_named(admin, redis_prefix) >= 1

        # Without the retry: LimiterUnavailable ("Connection closed by server").
        assert await limiter.hit(two_a_minute, "client", "1.2.3.4") is None
        assert await limiter.hit(two_a_minute, "client", "1.2.3.4") is not None  # still counted
    finally:
        await limiter.aclose()
