"""The PostgreSQL pool: a checkout costs no round trip, and a connection the server closed is
replaced at checkout rather than handed to a request (which would then fail with a 503)."""

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
                async with PostgresRotation.connect(engine, db) as rotation:
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
