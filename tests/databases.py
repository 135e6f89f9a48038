"""Real databases for tests: SQLite files always, PostgreSQL when TEST_DATABASE_URL is set.

Each test run owns uniquely named PostgreSQL databases (prefix `na_<run id>_`) and drops them at
the end, because the server outlives the run. Schemas are built by running the Alembic
migrations once into a template database; each test gets a fresh copy (`CREATE DATABASE ...
TEMPLATE ...`), which is much faster than migrating again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import shutil
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.engine import make_url

from auth_server import provision
from auth_server.settings import AuthSettings
from resource_server.persistence.database import migrate as migrate_resource

T = TypeVar("T")

RUN_ID = secrets.token_hex(4)
# The key-encryption key of every test auth server: the signing keys baked into the template
# databases are encrypted under it, so in-process apps and server processes can all use them.
TEST_KEK = "test-key-encryption-key-0123456789abcdef"
PG_URL = os.environ.get("TEST_DATABASE_URL") or None
REDIS_URL = os.environ.get("TEST_REDIS_URL") or None

# Every database test runs on SQLite, and on PostgreSQL too when TEST_DATABASE_URL is set.
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(PG_URL is None, reason="TEST_DATABASE_URL is not set"),
    ),
]


def run_sync(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a private loop in another thread (safe inside pytest-asyncio)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_fn())).result()


def _admin_dsn() -> str:
    assert PG_URL is not None
    url = make_url(PG_URL).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def pg_url_for(database: str) -> str:
    assert PG_URL is not None
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


async def _execute(*statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_admin_dsn())
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


class PostgresDatabases:
    """Creates templates and per-test copies, and drops them all at the end of the run."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.templates: dict[str, str] = {}
        self.counter = 0

    def template(self, name: str, migrate: Callable[[str], None]) -> str:
        if name not in self.templates:
            db = f"na_{RUN_ID}_tmpl_{name}"
            run_sync(lambda: _execute(f'CREATE DATABASE "{db}"'))
            self.created.append(db)
            # In a thread: migrations run their own event loop, and callers may be inside one.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pool.submit(migrate, pg_url_for(db)).result()
            self.templates[name] = db
        return self.templates[name]

    def copy(self, name: str, migrate: Callable[[str], None]) -> str:
        template = self.template(name, migrate)
        self.counter += 1
        db = f"na_{RUN_ID}_{name}_{self.counter}"
        run_sync(lambda: _execute(f'CREATE DATABASE "{db}" TEMPLATE "{template}"'))
        self.created.append(db)
        return pg_url_for(db)

    def empty(self, name: str) -> str:
        """A new, empty database (for migration tests that start from an older revision)."""
        self.counter += 1
        db = f"na_{RUN_ID}_{name}_{self.counter}"
        run_sync(lambda: _execute(f'CREATE DATABASE "{db}"'))
        self.created.append(db)
        return pg_url_for(db)

    def drop_all(self) -> None:
        async def drop() -> None:
            for db in reversed(self.created):
                await _execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

        if self.created:
            run_sync(drop)
        self.created.clear()


def migrate_auth(url: str) -> None:
    """The auth schema, the seeded clients and a signing key pair (encrypted under TEST_KEK):
    baked into the template databases, so that no test generates RSA keys."""
    settings = AuthSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=url,
        key_encryption_key=TEST_KEK,
    )
    provision.migrate(settings, signing_keys=True)


def fresh_database(
    backend: str,
    name: str,
    directory: Path,
    sqlite_templates: dict[str, Path],
    pg_databases: PostgresDatabases,
) -> str:
    """A copy of the migrated `auth` or `resource` template, on SQLite or PostgreSQL."""
    migrate = migrate_auth if name == "auth" else migrate_resource
    if backend == "sqlite":
        target = directory / f"{name}.db"
        shutil.copyfile(sqlite_templates[name], target)
        return f"sqlite+aiosqlite:///{target}"
    return pg_databases.copy(name, migrate)
