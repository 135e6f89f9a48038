"""The third-party example (examples/protect_my_api.py, shown in the docs' "Protect your API"),
run as it is against a real auth server: 200 with a good token, 401 without one or with a forged one, 403 without the scope,
and 401 once the session is revoked."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.databases import PostgresDatabases, fresh_database
from tests.e2e.flows import bearer, sign_up_and_log_in
from tests.e2e.servers import Server, auth_env, base_env, free_port, start_process, start_server

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "protect_my_api.py"


@pytest.fixture
def auth_and_example(
    tmp_path: Path, _sqlite_templates: dict[str, Path], pg_databases: PostgresDatabases
) -> Iterator[tuple[Server, Server]]:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    database = fresh_database("sqlite", "auth", tmp_path, _sqlite_templates, pg_databases)
    started: list[Server] = []
    try:
        auth = start_server(
            "auth", "auth-server", port, auth_env(issuer, database, tmp_path / "var"), tmp_path
        )
        started.append(auth)
        example_port = free_port()
        example = start_process(
            "example",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "examples.protect_my_api:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(example_port),
            ],
            example_port,
            base_env() | {"NOTES_AUTH_ISSUER": issuer, "PYTHONPATH": str(ROOT)},
            tmp_path,
            ready_path="/openapi.json",
        )
        started.append(example)
        yield auth, example
    finally:
        for server in reversed(started):
            server.stop()


def forged(token: str) -> str:
    """The same header and claims, signed by a key that is not the issuer's."""
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, attacker, algorithm="RS256", headers=header)


async def test_the_example_protects_an_api(auth_and_example: tuple[Server, Server]) -> None:
    auth, example = auth_and_example
    async with httpx.AsyncClient(timeout=10) as http:
        tokens = await sign_up_and_log_in(http, auth.url)
        access = tokens["access_token"]
        sub = jwt.decode(access, options={"verify_signature": False})["sub"]

        ok = await http.get(f"{example.url}/things", headers=bearer(access))
        assert ok.status_code == 200 and ok.json() == {"owner": sub, "things": []}

        anonymous = await http.get(f"{example.url}/things")
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="my-api"'

        fake = await http.get(f"{example.url}/things", headers=bearer(forged(access)))
        assert fake.status_code == 401
        assert 'error="invalid_token"' in fake.headers["WWW-Authenticate"]

        unsigned = jwt.encode(
            jwt.decode(access, options={"verify_signature": False}),
            None,
            algorithm="none",
            headers={"kid": jwt.get_unverified_header(access)["kid"], "typ": "at+jwt"},
        )
        assert (
            await http.get(f"{example.url}/things", headers=bearer(unsigned))
        ).status_code == 401

        scoped = await http.delete(f"{example.url}/things", headers=bearer(access))
        assert scoped.status_code == 403
        assert 'error="insufficient_scope"' in scoped.headers["WWW-Authenticate"]
        assert 'scope="admin"' in scoped.headers["WWW-Authenticate"]

        # Revoking the refresh token ends the session: the example hears of it from the feed.
        revoked = await http.post(
            f"{auth.url}/revoke", data={"token": tokens["refresh_token"], "client_id": "web"}
        )
        assert revoked.status_code == 200
        deadline = time.monotonic() + 10
        status = 200
        while status == 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            status = (await http.get(f"{example.url}/things", headers=bearer(access))).status_code
        assert status == 401


def test_the_protect_your_api_guide_shows_the_example_file_itself() -> None:
    guide = (ROOT / "docs" / "guides" / "protect-your-api.md").read_text()
    assert f"```python\n{EXAMPLE.read_text().strip()}\n```" in guide
