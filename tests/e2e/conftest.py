"""The live system fixture: both services as real processes on loopback, on a real database."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.databases import BACKENDS, PostgresDatabases, fresh_database
from tests.e2e.servers import LiveSystem, Server, free_port, start_server
from tests.e2e.servers import auth_env as auth_env_for
from tests.e2e.servers import resource_env as resource_env_for

pytestmark = pytest.mark.e2e

LiveSystemFactory = Callable[..., LiveSystem]


@pytest.fixture(scope="module", params=BACKENDS)
def e2e_backend(request: pytest.FixtureRequest) -> str:
    """The database of the module's systems (module-scoped, so that a module can share one)."""
    return str(request.param)


@contextlib.contextmanager
def _system_factory(
    root: Path,
    backend: str,
    pg_databases: PostgresDatabases,
    sqlite_templates: dict[str, Path],
) -> Iterator[LiveSystemFactory]:
    started: list[Server] = []

    def start(
        auth: dict[str, str] | None = None, resource: dict[str, str] | None = None
    ) -> LiveSystem:
        workdir = root / f"system-{len(started)}"
        workdir.mkdir()
        auth_db = fresh_database(backend, "auth", workdir, sqlite_templates, pg_databases)
        resource_db = fresh_database(backend, "resource", workdir, sqlite_templates, pg_databases)
        auth_port, resource_port = free_port(), free_port()
        issuer = f"http://127.0.0.1:{auth_port}"
        auth_env = (
            auth_env_for(issuer, auth_db, workdir / "auth-var")
            | {"AUTH_CORS_ORIGINS": f"http://127.0.0.1:{resource_port}"}
            | (auth or {})
        )
        resource_env = (
            resource_env_for(issuer, resource_db, workdir / "resource-var")
            | {"RESOURCE_REVOCATION_POLL_INTERVAL": "1"}
            | (resource or {})
        )
        auth_server = start_server("auth", "auth-server", auth_port, auth_env, workdir)
        started.append(auth_server)
        resource_server = start_server(
            "resource", "resource-server", resource_port, resource_env, workdir
        )
        started.append(resource_server)
        return LiveSystem(auth_server, resource_server, auth_env, resource_env, started)

    try:
        yield start
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def live_system_factory(
    tmp_path: Path,
    e2e_backend: str,
    pg_databases: PostgresDatabases,
    _sqlite_templates: dict[str, Path],
) -> Iterator[LiveSystemFactory]:
    """Start an auth server and a resource server of the test's own, with extra settings."""
    with _system_factory(tmp_path, e2e_backend, pg_databases, _sqlite_templates) as start:
        yield start


@pytest.fixture(scope="module")
def module_system_factory(
    tmp_path_factory: pytest.TempPathFactory,
    e2e_backend: str,
    pg_databases: PostgresDatabases,
    _sqlite_templates: dict[str, Path],
) -> Iterator[LiveSystemFactory]:
    """Systems shared by the tests of one module (tests that don't disturb each other): started
    once, stopped when the module's tests are done."""
    root = tmp_path_factory.mktemp("e2e-module")
    with _system_factory(root, e2e_backend, pg_databases, _sqlite_templates) as start:
        yield start
