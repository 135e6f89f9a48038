"""Migrations that meet data written by earlier releases: each runs from the revision before it,
on SQLite and PostgreSQL, and says what it found in the log."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from auth_server.persistence.database import MIGRATIONS
from shared.service.db import alembic_upgrade
from tests.databases import PostgresDatabases, run_sync

Migrate = Callable[[str], None]


@pytest.fixture
def old_database(db_backend: str, tmp_path: Path, pg_databases: PostgresDatabases) -> str:
    """An empty database, on the test's backend, for a migration test to build up."""
    if db_backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'old-auth.db'}"
    return pg_databases.empty("old_auth")


def upgrade(url: str, revision: str = "head") -> None:
    alembic_upgrade(MIGRATIONS, url, revision)


def execute(url: str, *statements: tuple[str, dict[str, object]]) -> list[list[tuple[object, ...]]]:
    """Run statements in one transaction (rows of each, if it returns any)."""
    from shared.service.db import create_engine

    async def run() -> list[list[tuple[object, ...]]]:
        engine = create_engine(url)
        results = []
        try:
            async with engine.begin() as conn:
                for statement, params in statements:
                    result = await conn.execute(sa.text(statement), params)
                    results.append([tuple(r) for r in result.all()] if result.returns_rows else [])
        finally:
            await engine.dispose()
        return results

    return run_sync(run)


def test_duplicate_feed_rows_of_one_jti_are_merged_into_the_first(
    old_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade(old_database, "0005")
    now = dt.datetime.now(dt.UTC)
    rows = [
        ("jti", "j1", 0),
        ("jti", "j1", 30),
        ("sid", "s1", 0),
        ("jti", "j1", 60),
        ("jti", "j2", 0),
    ]
    execute(
        old_database,
        *(
            (
                "INSERT INTO revocations (kind, value, created_at, expires_at) "
                "VALUES (:kind, :value, :now, :expires)",
                {"kind": k, "value": v, "now": now, "expires": now + dt.timedelta(seconds=600 + s)},
            )
            for k, v, s in rows
        ),
    )
    with caplog.at_level(logging.WARNING):
        upgrade(old_database)
    [left] = execute(
        old_database, ("SELECT id, kind, value, expires_at FROM revocations ORDER BY id", {})
    )
    assert [(kind, value) for _, kind, value, _ in left] == [
        ("jti", "j1"),
        ("sid", "s1"),
        ("jti", "j2"),
    ]
    assert left[0][0] == 1  # the earliest row stays, with the latest expiry of its copies
    latest = (
        left[0][3]
        if isinstance(left[0][3], dt.datetime)
        else dt.datetime.fromisoformat(str(left[0][3]))
    )
    assert abs(latest.replace(tzinfo=dt.UTC).timestamp() - (now.timestamp() + 660)) < 1
    assert "merged 2 duplicate feed rows of 1 revoked access tokens" in caplog.text
