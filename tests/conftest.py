"""Fixtures every test layer shares: real databases, settings, apps and HTTP clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_server.settings import AuthSettings
from resource_server.persistence.database import migrate as migrate_resource
from resource_server.settings import ResourceSettings
from tests.databases import (
    BACKENDS,
    REDIS_URL,
    RUN_ID,
    TEST_KEK,
    PostgresDatabases,
    fresh_database,
    migrate_auth,
)

# Argon2id with small costs keeps the suite fast; production costs are the settings' defaults.
FAST_HASHING: dict[str, Any] = {
    "password_hash_time_cost": 1,
    "password_hash_memory_cost": 1024,
    "password_hash_parallelism": 1,
}


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PostgresDatabases]:
    dbs = PostgresDatabases()
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def _sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sqlite-templates")
    auth = root / "auth.db"
    resource = root / "resource.db"
    migrate_auth(f"sqlite+aiosqlite:///{auth}")
    migrate_resource(f"sqlite+aiosqlite:///{resource}")
    return {"auth": auth, "resource": resource}


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def auth_db_url(
    db_backend: str,
    tmp_path: Path,
    _sqlite_templates: dict[str, Path],
    pg_databases: PostgresDatabases,
) -> str:
    """A freshly migrated auth database (SQLite always; PostgreSQL too when configured)."""
    return fresh_database(db_backend, "auth", tmp_path, _sqlite_templates, pg_databases)


@pytest.fixture
def resource_db_url(
    db_backend: str,
    tmp_path: Path,
    _sqlite_templates: dict[str, Path],
    pg_databases: PostgresDatabases,
) -> str:
    """A freshly migrated resource database, on the same backend as `auth_db_url`."""
    return fresh_database(db_backend, "resource", tmp_path, _sqlite_templates, pg_databases)


@pytest.fixture
def redis_url() -> str:
    if REDIS_URL is None:
        pytest.skip("TEST_REDIS_URL is not set")
    return REDIS_URL


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A key prefix owned by one test; its keys are deleted afterwards."""
    prefix = f"test-{RUN_ID}-{abs(hash(request.node.nodeid)) % 10**8}"
    yield prefix
    if REDIS_URL is not None:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@pytest.fixture
def auth_settings(auth_db_url: str, tmp_path: Path) -> AuthSettings:
    return AuthSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=auth_db_url,
        key_encryption_key=TEST_KEK,
        var_dir=tmp_path / "auth-var",
        **FAST_HASHING,
    )


@pytest.fixture
def resource_settings(resource_db_url: str, tmp_path: Path) -> ResourceSettings:
    return ResourceSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=resource_db_url,
        var_dir=tmp_path / "resource-var",
    )


@pytest.fixture
async def auth_app(auth_settings: AuthSettings) -> AsyncIterator[Any]:
    """The auth server app with its lifespan running (engine, keys, hasher...)."""
    from auth_server.main import create_app

    app = create_app(auth_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def auth_client(auth_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking to the auth app in-process; the client address is 127.0.0.1."""
    transport = httpx.ASGITransport(app=auth_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield client
