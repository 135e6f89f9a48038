"""The PostgreSQL pools: a checkout costs no round trip, and a connection the server closed is
replaced at checkout rather than handed to a request (which would then fail with a 503). Both
the requests' pool (SQLAlchemy's) and the refresh grant's own (asyncpg's)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from shared.service.db import create_engine
from tests.databases import PG_URL, _admin_dsn

pytestmark = pytest.mark.skipif(PG_URL is None, reason="TEST_DATABASE_URL is not set")


async def _backend_pid(engine: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_checkout_sends_nothing_to_the_server() -> None:
    assert PG_URL is not None
    engine = create_engine(PG_URL, pool_size=1)
    sent: list[str] = []
    try:
        await _backend_pid(engine)  # the pool now holds one connection

        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            raw.driver_connection.add_query_logger(lambda record: sent.append(record.query))
        sent.clear()  # the logger sees queries from here on
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.fetchval("SELECT 41 + 1")
    finally:
        await engine.dispose()
    # No BEGIN / ";" / ROLLBACK ping before the one statement.
    assert sent == ["SELECT 41 + 1"]


async def test_a_connection_the_server_closed_is_replaced_at_checkout() -> None:
    assert PG_URL is not None
    engine = create_engine(PG_URL, pool_size=1)
    try:
        first = await _backend_pid(engine)
        admin = await asyncpg.connect(_admin_dsn())
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", first)
        finally:
            await admin.close()
        # The backend is gone; the pooled connection learns of it from its socket as soon as
        # the event loop reads it (no request needed).
        await asyncio.sleep(0.05)
        second = await _backend_pid(engine)  # would raise if handed the dead connection
    finally:
        await engine.dispose()
    assert second != first


async def test_a_rotation_whose_connection_dies_is_a_503_and_leaves_the_pool() -> None:
    """The refresh fast path talks to asyncpg directly, past SQLAlchemy. A connection that dies
    under it (a database restart) must surface as "database unavailable" (503 + Retry-After),
    not as asyncpg's own error (a 500: the cluster test saw one), and must not go back to the
    pool."""
    from sqlalchemy.ext.asyncio import AsyncSession

    from auth_server.sessions.repository import PostgresRotation
    from shared.service.problem import DEPENDENCY_ERRORS

    assert PG_URL is not None
    engine = create_engine(PG_URL, pool_size=1)
    try:
        async with AsyncSession(engine) as db:
            first = int((await db.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            with pytest.raises(DEPENDENCY_ERRORS):
                async with PostgresRotation.connect(None, db) as rotation:  # db's own
                    admin = await asyncpg.connect(_admin_dsn())
                    try:
                        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", first)
                    finally:
                        await admin.close()
                    await rotation.find("a-refresh-token")
            await db.rollback()
        second = await _backend_pid(engine)
    finally:
        await engine.dispose()
    assert second != first


async def _terminate(pid: int) -> None:
    admin = await asyncpg.connect(_admin_dsn())
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await admin.close()


async def test_the_refresh_pool_hands_a_connection_back_without_resetting_it() -> None:
    """asyncpg's pool would send RESET ALL, UNLISTEN *... each time a connection comes back:
    one more round trip per refresh, for session state the rotation never changes."""
    from auth_server.sessions.repository import PostgresRotation, open_rotation_pool

    assert PG_URL is not None
    pool = await open_rotation_pool(PG_URL, size=1)
    sent: list[str] = []
    try:
        async with PostgresRotation.connect(pool) as rotation:
            rotation._driver.add_query_logger(lambda record: sent.append(record.query))
            assert await rotation._driver.fetchval("SELECT 41 + 1") == 42
        async with PostgresRotation.connect(pool) as rotation:  # the same connection again
            assert await rotation._driver.fetchval("SELECT 41 + 2") == 43
    finally:
        await pool.close()
    assert sent == ["SELECT 41 + 1", "SELECT 41 + 2"]


async def test_a_refresh_pool_connection_that_dies_is_a_503_and_is_replaced() -> None:
    from auth_server.sessions.repository import PostgresRotation, open_rotation_pool
    from shared.service.problem import DEPENDENCY_ERRORS

    assert PG_URL is not None
    pool = await open_rotation_pool(PG_URL, size=1)
    try:
        with pytest.raises(DEPENDENCY_ERRORS):
            async with PostgresRotation.connect(pool) as rotation:
                first = int(await rotation._driver.fetchval("SELECT pg_backend_pid()"))
                await _terminate(first)
                await asyncio.sleep(0.05)  # the pool may learn of it before the next call
                await rotation._driver.fetchval("SELECT 1")
        async with PostgresRotation.connect(pool) as rotation:  # the one connection: a new one
            second = int(await rotation._driver.fetchval("SELECT pg_backend_pid()"))
    finally:
        await pool.close()
    assert second != first


async def test_a_database_that_cannot_be_reached_is_a_503_on_the_refresh_pool() -> None:
    from auth_server.sessions.repository import PostgresRotation, open_rotation_pool
    from shared.service.problem import DEPENDENCY_ERRORS

    pool = await open_rotation_pool("postgresql+asyncpg://postgres@127.0.0.1:9/nothing")
    try:
        with pytest.raises(DEPENDENCY_ERRORS):
            async with PostgresRotation.connect(pool):
                pytest.fail("no connection was expected")
    finally:
        await pool.close()
