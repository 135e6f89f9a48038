"""The live system fixture: both services as real processes on loopback, on a real database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.databases import PostgresDatabases
from tests.e2e.servers import LiveSystem, Server, free_port, start_server
from tests.e2e.servers import auth_env as auth_env_for
from tests.e2e.servers import resource_env as resource_env_for

pytestmark = pytest.mark.e2e

LiveSystemFactory = Callable[..., LiveSystem]


@pytest.fixture
def live_system_factory(
    tmp_path: Path,
    db_backend: str,
    pg_databases: PostgresDatabases,
) -> Iterator[LiveSystemFactory]:
    """Start the auth server and the resource server with the given extra settings."""
    started: list[Server] = []

    def start(
        auth: dict[str, str] | None = None, resource: dict[str, str] | None = None
    ) -> LiveSystem:
        from auth_server.persistence.database import migrate as migrate_auth
        from resource_server.persistence.database import migrate as migrate_resource

        if db_backend == "sqlite":
            auth_db = f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
            resource_db = f"sqlite+aiosqlite:///{tmp_path / 'resource.db'}"
        else:
            auth_db = pg_databases.copy("auth", migrate_auth)
            resource_db = pg_databases.copy("resource", migrate_resource)
        auth_port, resource_port = free_port(), free_port()
        issuer = f"http://127.0.0.1:{auth_port}"
        auth_env = (
            auth_env_for(issuer, auth_db, tmp_path / "auth-var")
            | {"AUTH_CORS_ORIGINS": f"http://127.0.0.1:{resource_port}"}
            | (auth or {})
        )
        resource_env = (
            resource_env_for(issuer, resource_db, tmp_path / "resource-var")
            | {"RESOURCE_REVOCATION_POLL_INTERVAL": "1"}
            | (resource or {})
        )
        auth_server = start_server("auth", "auth-server", auth_port, auth_env, tmp_path)
        started.append(auth_server)
        resource_server = start_server(
            "resource", "resource-server", resource_port, resource_env, tmp_path
        )
        started.append(resource_server)
        return LiveSystem(auth_server, resource_server, auth_env, resource_env, started)

    yield start
    for server in reversed(started):
        server.stop()
