"""Issue 16 item 5: a refund only ever undoes its own count, in its own window.

A right password gives its login's count back. When the window ended while the password was
being checked, the count is gone with its window: the refund must change nothing, neither in
the window that follows (another attempt may be counted there already) nor by leaving a
negative count. The review measured, with a 3 s window, an address limit of 3 and 2 s hashes,
5 passwords checked with Redis and 4 without. Run on the database's counters (SQLite and
PostgreSQL) and on Redis."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from auth_server.ratelimit import (
    AttemptCounter,
    CounterStore,
    MemoryCounterStore,
    RedisCounterStore,
    SqlCounterStore,
)
from auth_server.settings import AuthSettings
from shared.service.db import create_engine
from tests.databases import PG_URL, REDIS_URL, PostgresDatabases, fresh_database
from tests.integration.auth.conftest import PASSWORD, login, register
from tests.integration.auth.test_throttles import WRONG, app_at, client_from


@pytest.fixture(params=["database", "redis"])
async def counters(
    request: pytest.FixtureRequest, auth_settings: AuthSettings, redis_prefix: str
) -> AsyncIterator[tuple[AuthSettings, str]]:
    if request.param == "redis" and REDIS_URL is None:
        pytest.skip("TEST_REDIS_URL is not set")
    changes: dict[str, Any] = {
        "login_ip_limit": 3,
        "login_failure_limit": 100,
        "login_account_limit": 100,
        "password_hash_concurrency": 2,
    }
    if request.param == "redis":
        changes |= {"redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    yield auth_settings.model_copy(update=changes), request.param


async def end_every_window(app: Any, store: str, prefix: str) -> None:
    """Time passes: every attempt counter's window ends (as if its expiry had come)."""
    if store == "redis":
        redis = app.state.auth.redis
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        return
    async with app.state.auth.session_maker() as db, db.begin():
        await db.execute(
            text("UPDATE rate_limits SET window_end = :past"), {"past": time.time() - 1}
        )


async def test_a_refund_after_its_window_ended_undoes_nothing_in_the_next(
    counters: tuple[AuthSettings, str], redis_prefix: str
) -> None:
    settings, store = counters
    async with app_at(settings) as app, client_from(app, "198.51.100.5") as client:
        await register(client, "refunded")
        hasher = app.state.auth.passwords._hash
        check = hasher.verify_and_update
        started, release = threading.Event(), threading.Event()
        calls = [0]

        def first_waits(password: str, stored: str) -> tuple[bool, str | None]:
            calls[0] += 1
            if calls[0] == 1:
                started.set()
                release.wait(30)
            return check(password, stored)

        hasher.verify_and_update = first_waits
        try:
            right = asyncio.create_task(login(client, "refunded"))
            assert await asyncio.to_thread(started.wait, 30)  # counted, now being checked
            await end_every_window(app, store, redis_prefix)
            # The next window: one wrong guess from the same address is counted in it.
            assert (await login(client, "refunded", password=WRONG)).status_code == 400
            release.set()
            assert (await right).status_code == 200  # its refund comes after its window ended
        finally:
            release.set()
            hasher.verify_and_update = check
        # The new window holds the wrong guess: two more, then the address's limit of 3.
        statuses = [(await login(client, "refunded", password=WRONG)).status_code for _ in range(3)]
        assert statuses == [400, 400, 429]


async def test_a_refund_after_its_window_ended_leaves_no_negative_count(
    counters: tuple[AuthSettings, str], redis_prefix: str
) -> None:
    """With Redis, the late refund was `INCRBY -1` on an expired key: -1 with a fresh expiry,
    one guess more than the limit in the next window."""
    settings, store = counters
    async with app_at(settings) as app, client_from(app, "198.51.100.6") as client:
        await register(client, "negative")
        hasher = app.state.auth.passwords._hash
        check = hasher.verify_and_update
        started, release = threading.Event(), threading.Event()

        def waits(password: str, stored: str) -> tuple[bool, str | None]:
            if password == PASSWORD:
                started.set()
                release.wait(30)
            return check(password, stored)

        hasher.verify_and_update = waits
        try:
            right = asyncio.create_task(login(client, "negative"))
            assert await asyncio.to_thread(started.wait, 30)
            await end_every_window(app, store, redis_prefix)
            release.set()
            assert (await right).status_code == 200
        finally:
            release.set()
            hasher.verify_and_update = check
        statuses = [(await login(client, "negative", password=WRONG)).status_code for _ in range(4)]
        assert statuses == [400, 400, 400, 429]


# -- each store, directly -------------------------------------------------------------------


class ManualClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.skipif(PG_URL is None, reason="no PG")),
        pytest.param("redis", marks=pytest.mark.skipif(REDIS_URL is None, reason="no Redis")),
    ]
)
async def store(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    _sqlite_templates: dict[str, Path],
    pg_databases: PostgresDatabases,
    redis_prefix: str,
) -> AsyncIterator[tuple[CounterStore, Callable[[], Awaitable[None]]]]:
    """(a counter store, what ends every window of it)."""
    clock = ManualClock()

    async def advance() -> None:
        clock.now += 61

    if request.param == "memory":
        yield MemoryCounterStore(clock), advance
    elif request.param == "redis":
        from auth_server.redis_client import open_redis

        redis = open_redis(REDIS_URL)

        async def expire() -> None:  # an expired key is a deleted one
            keys = [key async for key in redis.scan_iter(match=f"{redis_prefix}*")]
            await redis.delete(*keys)

        yield RedisCounterStore(redis, redis_prefix), expire
        await redis.aclose()
    else:
        url = fresh_database(request.param, "auth", tmp_path, _sqlite_templates, pg_databases)
        engine = create_engine(url)
        yield SqlCounterStore(engine, clock=clock), advance
        await engine.dispose()


async def test_a_refund_takes_back_its_own_count_in_its_own_window_only(
    store: tuple[CounterStore, Callable[[], Awaitable[None]]],
) -> None:
    counts, end_the_window = store
    counter = AttemptCounter(counts)

    async def attempts(n: int) -> list[bool]:
        return [(await counter.attempt("k", 2, 60)).allowed for _ in range(n)]

    first = await counter.attempt("k", 2, 60)
    second = await counter.attempt("k", 2, 60)
    assert first.ticket is not None and second.ticket is not None
    await counter.refund(first.ticket)  # in its window: one more attempt fits
    assert await attempts(2) == [True, False]

    await end_the_window()
    third = await counter.attempt("k", 2, 60)  # the next window's first
    assert third.ticket is not None
    await counter.refund(second.ticket)  # the ended window's: changes nothing now
    await counter.refund(second.ticket)
    assert await attempts(2) == [True, False]

    await end_the_window()
    await counter.refund(third.ticket)  # nothing counted since: no negative count either
    assert await attempts(3) == [True, True, False]
