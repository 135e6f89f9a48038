"""Independent clients against a real auth server on loopback: npm's openid-client (v6) and
Authlib's OAuth 2.0 client.

The npm package is pinned by package.json and package-lock.json here and installed with `npm ci`
(the lock's exact versions and integrity hashes) once per lock into a cache directory, so a
clean CI clone repeats it; Node 20 and npm come from the machine (Debian's packages).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.code_flow import HIDDEN
from tests.databases import PostgresDatabases, fresh_database
from tests.e2e.servers import BIN, Server, auth_env, free_port, start_server

HERE = Path(__file__).resolve().parent
PASSWORD = "interop passphrase that is long"

pytestmark = pytest.mark.e2e


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "notes-auth"


@pytest.fixture(scope="session")
def openid_client_dir() -> Path:
    """A directory with openid-client installed by `npm ci`, and the client script."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.fail("node and npm are needed for the interop tests (apt-get install nodejs npm)")
    lock = (HERE / "package-lock.json").read_bytes()
    key = hashlib.sha256(lock + (HERE / "package.json").read_bytes()).hexdigest()[:16]
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"interop-{key}"
    with open(root / "interop.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one installer at a time (pytest-xdist workers)
        if not (target / "node_modules" / "openid-client" / "package.json").exists():
            staging = Path(tempfile.mkdtemp(dir=root, prefix="interop-staging-"))
            for name in ("package.json", "package-lock.json"):
                shutil.copy(HERE / name, staging / name)
            subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=staging,
                check=True,
                timeout=300,
                capture_output=True,
            )
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
    shutil.copy(HERE / "client.mjs", target / "client.mjs")
    return target


@dataclass
class Provider:
    """A real auth server, a person with an account, and a cookie jar for their browser."""

    server: Server
    env: dict[str, str]
    username: str = "interop-user"

    @property
    def issuer(self) -> str:
        return self.server.url

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [str(BIN / "auth-server"), *args],
            text=True,
            capture_output=True,
            env=self.env,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def browse(self, browser: httpx.Client, url: str, redirect_uri: str) -> str:
        """What a person does between the app's redirect and the way back: sign in on the
        hosted page if asked, allow the app if asked. The URL the browser is sent back to."""
        location = url
        for _ in range(10):
            if location.startswith(redirect_uri):
                return location
            target = location if "://" in location else f"{self.issuer}{location}"
            response = browser.get(target)
            if response.status_code in (302, 303):
                location = response.headers["location"]
                continue
            assert response.status_code == 200, response.text
            fields = dict(HIDDEN.findall(response.text))
            path = urlsplit(target).path
            if path == "/login":
                answer = browser.post(
                    f"{self.issuer}/login",
                    data=fields | {"username": self.username, "password": PASSWORD},
                )
            elif path == "/consent":
                answer = browser.post(f"{self.issuer}/consent", data=fields | {"decision": "allow"})
            else:
                raise AssertionError(f"unexpected page {target}")
            assert answer.status_code == 303, answer.text
            location = answer.headers["location"]
        raise AssertionError("too many steps")


@pytest.fixture(scope="module")
def provider(
    tmp_path_factory: pytest.TempPathFactory,
    _sqlite_templates: dict[str, Path],
    pg_databases: PostgresDatabases,
) -> Iterator[Provider]:
    root = tmp_path_factory.mktemp("interop")
    database = fresh_database("sqlite", "auth", root, _sqlite_templates, pg_databases)
    port = free_port()
    env = auth_env(f"http://127.0.0.1:{port}", database, root / "var")
    server = start_server("auth", "auth-server", port, env, root)
    try:
        provider = Provider(server, env)
        created = httpx.post(
            f"{provider.issuer}/users",
            json={
                "username": provider.username,
                "email": "interop@example.com",
                "password": PASSWORD,
            },
            timeout=10,
        )
        assert created.status_code == 201, created.text
        yield provider
    finally:
        server.stop()


@contextlib.contextmanager
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=15, follow_redirects=False) as client:
        yield client


__all__: list[Any] = ["PASSWORD", "Provider", "browser"]
