"""The `auth-server` command line: exit codes 0 / 1 / 2, one-line errors, secrets shown once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from auth_server.cli import app

runner = CliRunner()


async def invoke(args: list[str], stdin: str | None = None) -> Any:
    """The CLI runs its own event loop: from an async test, run it in a thread."""
    return await asyncio.to_thread(runner.invoke, app, args, input=stdin)


@pytest.fixture
def cli_env(auth_settings: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "AUTH_DATABASE_URL": auth_settings.database_url,
        "AUTH_KEY_ENCRYPTION_KEY": auth_settings.key_encryption_key.get_secret_value(),
        "AUTH_ENVIRONMENT": "test",
        "AUTH_VAR_DIR": str(auth_settings.var_dir),
        "AUTH_PASSWORD_HASH_MEMORY_COST": "1024",
        "AUTH_PASSWORD_HASH_TIME_COST": "1",
        "AUTH_PASSWORD_HASH_PARALLELISM": "1",
        "AUTH_JWKS_MAX_AGE": "0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_migrate_is_idempotent(cli_env: dict[str, str]) -> None:
    for _ in range(2):
        result = runner.invoke(app, ["migrate"])
        assert result.exit_code == 0, result.output


def test_migrate_recreates_a_missing_web_client(cli_env: dict[str, str]) -> None:
    import sqlite3

    url = cli_env["AUTH_DATABASE_URL"]
    if not url.startswith("sqlite"):
        pytest.skip("checked on the SQLite file directly")
    path = url.split("///", 1)[1]
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM clients WHERE id IN ('web', 'web-page')")
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT id, grant_types, scopes, secret_hash, refresh_in_cookie FROM clients "
            "WHERE id IN ('web', 'web-page') ORDER BY id"
        ).fetchall()
    assert rows == [
        ("web", "password refresh_token", "notes:read notes:write admin", None, 0),
        # Contract §8.1: the page's client is code + PKCE only, and signs in with OpenID Connect.
        (
            "web-page",
            "authorization_code refresh_token",
            "openid profile email notes:read notes:write",
            None,
            1,
        ),
    ]


def test_users_create_reads_the_password_from_stdin(cli_env: dict[str, str]) -> None:
    result = runner.invoke(
        app,
        ["users", "create", "Carol", "--email", "carol@example.com", "--admin"],
        input="a long passphrase here\n",
    )
    assert result.exit_code == 0, result.output
    assert "carol" in result.output and "admin" in result.output
    assert "a long passphrase here" not in result.output
    again = runner.invoke(
        app,
        ["users", "create", "carol", "--email", "c2@example.com"],
        input="a long passphrase here\n",
    )
    assert again.exit_code == 1
    assert again.output.strip().count("\n") == 0 and "already registered" in again.output
    weak = runner.invoke(
        app, ["users", "create", "dave", "--email", "dave@example.com"], input="password\n"
    )
    assert weak.exit_code == 1 and "Traceback" not in weak.output
    empty = runner.invoke(app, ["users", "create", "erin", "--email", "erin@example.com"], input="")
    assert empty.exit_code == 1


def test_bad_arguments_exit_2(cli_env: dict[str, str]) -> None:
    assert runner.invoke(app, ["users", "create"]).exit_code == 2
    assert runner.invoke(app, ["users", "create", "x"]).exit_code == 2  # --email missing
    assert runner.invoke(app, ["serve", "--port", "not-a-port"]).exit_code == 2
    assert runner.invoke(app, ["nonsense"]).exit_code == 2


async def test_clients_create_prints_the_secret_alone_on_the_last_line(
    cli_env: dict[str, str], auth_client: httpx.AsyncClient
) -> None:
    result = await invoke(
        [
            "clients",
            "create",
            "reports",
            "--confidential",
            "--grant",
            "client_credentials",
            "--scope",
            "notes:read",
        ],
    )
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]
    assert len(secret) >= 40 and " " not in secret
    token = await auth_client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=("reports", secret)
    )
    assert token.status_code == 200 and token.json()["scope"] == "notes:read"
    duplicate = await invoke(["clients", "create", "reports", "--confidential"])
    assert duplicate.exit_code == 1
    bad_grant = await invoke(["clients", "create", "x1", "--grant", "implicit"])
    assert bad_grant.exit_code == 1 and "unknown grant" in bad_grant.output
    public_cc = await invoke(["clients", "create", "x2", "--grant", "client_credentials"])
    assert public_cc.exit_code == 1
    several = await invoke(
        [
            "clients",
            "create",
            "x3",
            "--grant",
            "password refresh_token",
            "--scope",
            "notes:read,notes:write",
        ]
    )
    assert several.exit_code == 0, several.output
    assert "grants: password refresh_token; scopes: notes:read notes:write" in several.output


async def test_keys_list_rotate_and_retire(
    cli_env: dict[str, str], auth_client: httpx.AsyncClient
) -> None:
    listed = await invoke(["keys", "list"])
    assert listed.exit_code == 0
    assert sorted(line.split()[1] for line in listed.output.strip().splitlines()) == [
        "active",
        "next",
    ]
    rotated = await invoke(["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    retiring = next(
        line.split()[1] for line in rotated.output.splitlines() if line.startswith("retiring:")
    )
    retired = await invoke(["keys", "retire", retiring])
    assert retired.exit_code == 0
    active = next(
        line.split()[0]
        for line in (await invoke(["keys", "list"])).output.splitlines()
        if " active " in line
    )
    refused = await invoke(["keys", "retire", active])
    assert refused.exit_code == 1 and "emergency" in refused.output
    dashed = await invoke(["keys", "retire", "-starts-with-a-dash"])  # base64url kids may
    assert dashed.exit_code == 1 and "no signing key '-starts-with-a-dash'" in dashed.output
    unknown = await invoke(["keys", "retire", "no-such-kid"])
    assert unknown.exit_code == 1 and unknown.output.startswith("error:")
    emergency = await invoke(["keys", "rotate", "--emergency"])
    assert emergency.exit_code == 0 and "retired:" in emergency.output
