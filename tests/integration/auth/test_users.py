"""POST /users and GET /users/me: normalization, uniqueness, the password policy, the race."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.integration.auth.conftest import PASSWORD, login, register

PROBLEM = "application/problem+json"


async def _sign_up(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    defaults = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    return await client.post("/users", json=defaults | body)


async def test_sign_up_returns_201_with_an_opaque_id_and_no_secret(
    auth_client: httpx.AsyncClient,
) -> None:
    response = await _sign_up(auth_client)
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "alice" and body["email"] == "alice@example.com"
    assert body["id"] != "alice" and len(body["id"]) == 36
    assert body["is_admin"] is False
    assert "password" not in response.text and PASSWORD not in response.text


@pytest.mark.parametrize("variant", ["ALICE", "Alice", "\uff41\uff4c\uff49\uff43\uff45"])
async def test_usernames_are_one_name_after_nfkc_and_case_folding(
    auth_client: httpx.AsyncClient, variant: str
) -> None:
    assert (await _sign_up(auth_client)).status_code == 201
    taken = await _sign_up(auth_client, username=variant, email="other@example.com")
    assert taken.status_code == 409
    assert taken.headers["content-type"].startswith(PROBLEM)
    # And the variant logs in as the same user.
    assert (await login(auth_client, variant)).status_code == 200


async def test_emails_are_unique_without_regard_to_case(auth_client: httpx.AsyncClient) -> None:
    assert (await _sign_up(auth_client)).status_code == 201
    assert (
        await _sign_up(auth_client, username="bob", email="ALICE@Example.COM")
    ).status_code == 409


async def test_login_works_with_the_email_too(auth_client: httpx.AsyncClient) -> None:
    await _sign_up(auth_client)
    assert (await login(auth_client, "Alice@Example.com")).status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "al\u200bice"),  # zero-width space (format character)
        ("username", "ali\x07ce"),  # control character
        ("username", "a"),
        ("username", "x" * 65),
        ("username", "has space"),
        ("email", "not-an-email"),
        ("email", "a@b"),
        ("password", "short"),
        ("password", "x" * 1025),
        ("password", "password123"),  # too short anyway
        ("password", "1234567890"),  # among the most common passwords
        ("password", "qwertyuiop"),
        ("password", "alice@example.com"),
    ],
)
async def test_invalid_or_weak_values_are_422(
    auth_client: httpx.AsyncClient, field: str, value: str
) -> None:
    response = await _sign_up(auth_client, **{field: value})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    if field == "password":
        assert value not in response.text  # the rejected password is never echoed


async def test_unknown_fields_are_refused_never_applied(auth_client: httpx.AsyncClient) -> None:
    response = await _sign_up(auth_client, is_admin=True)
    assert response.status_code == 422
    assert (await _sign_up(auth_client)).json()["is_admin"] is False


@pytest.mark.parametrize("body", [b"{", b"[]", b'"x"', b'{"username": 1}'])
async def test_malformed_bodies_are_4xx_problems(
    auth_client: httpx.AsyncClient, body: bytes
) -> None:
    response = await auth_client.post(
        "/users", content=body, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_ten_concurrent_sign_ups_with_one_name_give_one_201_and_nine_409(
    auth_client: httpx.AsyncClient,
) -> None:
    responses = await asyncio.gather(
        *(_sign_up(auth_client, email=f"racer{i}@example.com") for i in range(10))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 9


async def test_registration_can_be_closed(auth_settings: Any) -> None:
    from tests.integration.sessions.conftest import running_app

    async with running_app(auth_settings.model_copy(update={"registration_open": False})) as client:
        response = await _sign_up(client)
        assert response.status_code == 403
        assert response.headers["content-type"].startswith(PROBLEM)


async def test_sign_ups_per_address_are_limited(auth_settings: Any) -> None:
    from tests.integration.sessions.conftest import running_app

    async with running_app(auth_settings.model_copy(update={"registration_ip_limit": 2})) as client:
        for i in range(2):
            assert (
                await _sign_up(client, username=f"user{i}", email=f"u{i}@example.com")
            ).status_code == 201
        limited = await _sign_up(client, username="user9", email="u9@example.com")
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) > 0


async def test_users_me_needs_a_valid_token(auth_client: httpx.AsyncClient) -> None:
    anonymous = await auth_client.get("/users/me")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="notes-auth"'
    garbage = await auth_client.get("/users/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert garbage.status_code == 401
    assert 'error="invalid_token"' in garbage.headers["WWW-Authenticate"]
    basic = await auth_client.get("/users/me", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert basic.status_code == 401


async def test_users_me_returns_the_caller(auth_client: httpx.AsyncClient) -> None:
    user = await register(auth_client)
    tokens = (await login(auth_client, user["username"])).json()
    me = await auth_client.get(
        "/users/me", headers={"Authorization": f"bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["id"] == user["id"]
