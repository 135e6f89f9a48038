"""Issue 16 item 2: one login string names at most one account, whatever the order of sign-ups.

The review: `@` is allowed in usernames, sign-up compared usernames with usernames and emails
with emails, and a login matched either, returning whichever row came first. `POST /users
{"username": "victim@example.com"}` was a 201; then the victim's login by email failed and the
attacker's password logged in as the attacker. Usernames and emails now share one namespace of
canonical login names (NFKC, case folding) with a unique key in the database."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from auth_server.settings import AuthSettings
from tests.integration.auth.conftest import PASSWORD, login
from tests.integration.sessions.conftest import running_app

OTHER_PASSWORD = "the squatter's own passphrase"


async def sign_up(
    client: httpx.AsyncClient, username: str, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post(
        "/users", json={"username": username, "email": email, "password": password}
    )


def subject(response: httpx.Response) -> str:
    import jwt

    assert response.status_code == 200, response.text
    return str(
        jwt.decode(response.json()["access_token"], options={"verify_signature": False})["sub"]
    )


@pytest.mark.parametrize(
    "squatted",
    ["victim@example.com", "Victim@Example.COM", "\uff56ictim@example.com"],
    ids=["same", "case", "fullwidth"],
)
async def test_a_username_can_not_be_another_accounts_email(
    auth_client: httpx.AsyncClient, squatted: str
) -> None:
    victim = await sign_up(auth_client, "victim", "victim@example.com")
    assert victim.status_code == 201
    squatter = await sign_up(auth_client, squatted, "squatter@example.com", OTHER_PASSWORD)
    assert squatter.status_code == 409, squatter.text
    assert squatter.headers["content-type"].startswith("application/problem+json")
    # The victim's login by email still names the victim, and nobody else's password works.
    assert subject(await login(auth_client, "victim@example.com")) == victim.json()["id"]
    assert (await login(auth_client, squatted, OTHER_PASSWORD)).status_code == 400


async def test_an_email_can_not_be_another_accounts_username(
    auth_client: httpx.AsyncClient,
) -> None:
    first = await sign_up(auth_client, "first@example.com", "first-mail@example.com")
    assert first.status_code == 201
    for email in ("first@example.com", "FIRST@example.com"):
        second = await sign_up(auth_client, "second", email, OTHER_PASSWORD)
        assert second.status_code == 409, second.text
    assert subject(await login(auth_client, "First@Example.com")) == first.json()["id"]
    # An account's username may be its own email.
    assert (await sign_up(auth_client, "own@example.com", "Own@example.com")).status_code == 201
    assert (await login(auth_client, "own@example.com")).status_code == 200


async def test_two_sign_ups_racing_for_one_login_name_give_one_account(
    auth_settings: AuthSettings,
) -> None:
    """Both sign-ups find the name free before either writes (each waits for the other at its
    hash): only the database's unique key can refuse the second."""
    settings = auth_settings.model_copy(update={"password_hash_concurrency": 2})
    async with running_app(settings) as client:
        argon2 = client.app.state.auth.passwords._hash  # type: ignore[attr-defined]
        hash_ = argon2.hash
        both_looked = threading.Barrier(2, timeout=30)

        def after_both(password: str) -> Any:
            both_looked.wait()
            return hash_(password)

        argon2.hash = after_both
        try:
            answers = await asyncio.gather(
                sign_up(client, "racer@example.com", "racer-one@example.com"),
                sign_up(client, "racer-two", "Racer@example.com", OTHER_PASSWORD),
            )
        finally:
            argon2.hash = hash_
        assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
        winner = next(a for a in answers if a.status_code == 201)
        password = PASSWORD if answers[0] is winner else OTHER_PASSWORD
        assert subject(await login(client, "racer@example.com", password)) == winner.json()["id"]


async def test_the_command_line_obeys_the_same_rule(
    auth_client: httpx.AsyncClient, auth_settings: AuthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from auth_server.cli import app

    assert (await sign_up(auth_client, "mailer", "mailer@example.com")).status_code == 201
    for name, value in {
        "AUTH_DATABASE_URL": auth_settings.database_url,
        "AUTH_KEY_ENCRYPTION_KEY": auth_settings.key_encryption_key.get_secret_value(),
        "AUTH_ENVIRONMENT": "test",
        "AUTH_VAR_DIR": str(auth_settings.var_dir),
        "AUTH_PASSWORD_HASH_MEMORY_COST": "1024",
        "AUTH_PASSWORD_HASH_TIME_COST": "1",
        "AUTH_PASSWORD_HASH_PARALLELISM": "1",
    }.items():
        monkeypatch.setenv(name, value)
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["users", "create", "MAILER@example.com", "--email", "cli@example.com"],
        input=OTHER_PASSWORD + "\n",
    )
    assert result.exit_code == 1, result.output
    assert "already registered" in result.output
