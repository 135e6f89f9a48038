"""The refresh and revoke flood limits (AUTH_SESSION_RATE_LIMIT, AUTH_CLIENT_RATE_LIMIT).

A refresh counts against its client (per address) and its session in one round trip to Redis,
with the keys and the arithmetic of the `limits` library, so the counters stay shared with the
single-limit hits that revocation makes. A counter seen over its limit is remembered until its
window ends. Run on the in-memory storage and on Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage

from auth_server.ratelimit import (
    LimiterUnavailable,
    RateLimiter,
    limits_key_prefix,
    open_storage,
)
from auth_server.redis_client import open_redis
from auth_server.settings import AuthSettings
from tests.databases import REDIS_URL
from tests.integration.sessions.conftest import AppFactory, login, refresh, register

STORAGES = ["memory", "redis"]


class CountingStorage(MemoryStorage):
    """The in-memory `limits` storage, counting the increments sent to it."""

    def __init__(self) -> None:
        super().__init__()
        self.increments = 0

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        self.increments += 1
        return await super().incr(key, expiry, amount)


def limiter_settings(kind: str, redis_prefix: str) -> AuthSettings:
    if kind == "redis" and REDIS_URL is None:
        pytest.skip("TEST_REDIS_URL is not set")
    return AuthSettings(  # type: ignore[call-arg]
        _env_file=None,
        redis_url=REDIS_URL if kind == "redis" else None,
        redis_prefix=redis_prefix,
    )


@pytest.fixture(params=STORAGES)
async def make_limiter(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Any]:
    """`make_limiter()`: a limiter as a server process builds it; each call is another process
    (its own memory) on the same storage."""
    settings = limiter_settings(request.param, redis_prefix)
    storage = open_storage(settings)
    redis = open_redis(settings.redis_url)
    made: list[RateLimiter] = []

    def make() -> RateLimiter:
        made.append(RateLimiter(storage, redis, limits_key_prefix(settings)))
        return made[-1]

    yield make
    for limiter in made:
        await limiter.aclose()
    if redis is not None:
        await redis.aclose()


TWO = RateLimitItemPerMinute(2)
THREE = RateLimitItemPerMinute(3)


async def test_several_limits_count_in_turn_and_stop_at_the_first_refusal(
    make_limiter: Any,
) -> None:
    limiter = make_limiter()
    client, session = (TWO, ("client", "web", "1.2.3.4")), (THREE, ("session", "s1"))
    assert await limiter.hit_all(client, session) is None
    assert await limiter.hit_all(client, session) is None
    wait = await limiter.hit_all(client, session)  # the client's third: refused
    assert wait is not None and 1 <= wait <= 61
    # The session was not counted for the refused request: it has one left of three.
    assert await limiter.hit(THREE, "session", "s1") is None
    assert await limiter.hit(THREE, "session", "s1") is not None


async def test_one_round_trip_and_single_hits_share_their_counters(make_limiter: Any) -> None:
    """What a refresh counts (client and session together) and what a revocation counts (one
    at a time, through `limits` itself) are the same counters."""
    limiter = make_limiter()
    session = (TWO, ("session", "shared"))
    assert await limiter.hit(TWO, "session", "shared") is None
    assert await limiter.hit_all((THREE, ("client", "web", "5.6.7.8")), session) is None
    assert await limiter.hit(TWO, "session", "shared") is not None  # the third of two
    other_process = make_limiter()
    assert await other_process.hit(TWO, "session", "shared") is not None  # in the storage


async def test_a_refused_counter_is_refused_again_without_asking_the_storage() -> None:
    storage = CountingStorage()
    limiter = RateLimiter(storage)
    flood = (TWO, ("client", "web", "9.9.9.9"))
    try:
        assert limiter.refused(TWO, "client", "web", "9.9.9.9") is None
        for _ in range(2):
            assert await limiter.hit(TWO, "client", "web", "9.9.9.9") is None
        assert await limiter.hit(TWO, "client", "web", "9.9.9.9") is not None
        sent = storage.increments
        for _ in range(5):
            wait = await limiter.hit_all(flood, (THREE, ("session", "x")))
            assert wait is not None and 1 <= wait <= 61
        assert storage.increments == sent
        remembered = limiter.refused(TWO, "client", "web", "9.9.9.9")
        assert remembered is not None and 1 <= remembered <= 61
        assert limiter.refused(TWO, "client", "web", "another address") is None
    finally:
        await limiter.aclose()


async def test_an_unreachable_redis_is_limiter_unavailable(redis_prefix: str) -> None:
    settings = AuthSettings(  # type: ignore[call-arg]
        _env_file=None, redis_url="redis://127.0.0.1:9/0", redis_prefix=redis_prefix
    )
    redis = open_redis(settings.redis_url)
    limiter = RateLimiter(open_storage(settings), redis, limits_key_prefix(settings))
    try:
        with pytest.raises(LimiterUnavailable):
            await limiter.hit_all((TWO, ("client", "a")), (TWO, ("session", "b")))
        with pytest.raises(LimiterUnavailable):
            await limiter.hit(TWO, "client", "a")
    finally:
        await limiter.aclose()
        assert redis is not None
        await redis.aclose()


# -- at the token endpoint --------------------------------------------------------------------


@pytest.fixture(params=STORAGES)
def limits_app(request: pytest.FixtureRequest, app_with: AppFactory, redis_prefix: str) -> Any:
    """`limits_app(**settings)`: the auth app on the in-memory limiter or on Redis."""
    if request.param == "redis" and REDIS_URL is None:
        pytest.skip("TEST_REDIS_URL is not set")
    redis = (
        {"redis_url": REDIS_URL, "redis_prefix": redis_prefix} if request.param == "redis" else {}
    )

    def make(**changes: Any) -> Any:
        return app_with(**(redis | changes))

    return make


async def test_every_refresh_counts_once_against_its_client(
    limits_app: Any, redis_prefix: str
) -> None:
    """Good tokens, unknown tokens and replays all count; the refused refresh spends nothing."""
    async with limits_app(client_rate_limit=4, refresh_reuse_grace=30) as client:
        await register(client, "counted")
        first = (await login(client, "counted")).json()["refresh_token"]
        rotated = await refresh(client, first)  # 1
        assert rotated.status_code == 200, rotated.text
        unknown = await refresh(client, "not-a-refresh-token")  # 2
        assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"
        replay = await refresh(client, first)  # 3: the grace window's same answer
        assert replay.status_code == 200 and replay.json() == rotated.json()
        token = rotated.json()["refresh_token"]
        assert (await refresh(client, token)).status_code == 200  # 4
        fresh = (await login(client, "counted")).json()["refresh_token"]
        limited = await refresh(client, fresh)  # 5: over the client's four
        assert limited.status_code == 429, limited.text
        assert limited.json()["error"] == "invalid_request"  # RFC 6749 §5.2 has no other
        assert int(limited.headers["Retry-After"]) >= 1
        garbage = await refresh(client, "still-not-a-token")
        assert garbage.status_code == 429
    # The refused refresh spent nothing: on an app with fresh counters (its own memory, or
    # another Redis prefix: this test can't wait out the window), the token still rotates.
    async with limits_app(client_rate_limit=4, redis_prefix=f"{redis_prefix}-fresh") as other:
        assert (await refresh(other, fresh)).status_code == 200


async def test_a_session_over_its_limit_is_refused_whichever_storage(limits_app: Any) -> None:
    async with limits_app(session_rate_limit=2) as client:
        await register(client, "sessioned")
        token = (await login(client, "sessioned")).json()["refresh_token"]
        for _ in range(2):
            response = await refresh(client, token)
            assert response.status_code == 200, response.text
            token = response.json()["refresh_token"]
        limited = await refresh(client, token)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        # Revocation counts the same session counter (one hit at a time).
        revoked = await client.post("/revoke", data={"token": token, "client_id": "web"})
        assert revoked.status_code == 429


async def test_ipv6_addresses_share_a_client_limit_per_64(limits_app: Any) -> None:
    """Issue 16 item 6: the limit per client and address counted each IPv6 address apart (the
    login throttle groups them by /64: one host holds a whole /64). Measured: 10 addresses of
    one /64, never a 429 with a limit of 3."""
    import httpx

    async with limits_app(client_rate_limit=3) as client:
        app = client.app

        def at(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")

        statuses = []
        for i in range(5):  # refreshes and revocations share the count
            async with at(f"2001:db8:1:2::{i + 1:x}") as host:
                if i % 2:
                    answer = await host.post("/revoke", data={"token": "x", "client_id": "web"})
                else:
                    answer = await refresh(host, "not-a-refresh-token")
                statuses.append(answer.status_code)
        assert statuses == [400, 200, 400, 429, 429]
        async with at("2001:db8:1:3::1") as other_64:
            assert (await refresh(other_64, "not-a-refresh-token")).status_code == 400
        async with at("192.0.2.1") as v4, at("::ffff:192.0.2.1") as mapped:
            assert [(await refresh(v4, "x")).status_code for _ in range(3)] == [400] * 3
            assert (await refresh(mapped, "x")).status_code == 429  # the same address
