"""Issue 9: admin rights need the `admin` scope, granted only to admins who ask for it by name,
through clients allowed it. An admin's token narrowed to the notes (or handed to another API
with the same audience) can't end anyone's sessions or read the audit trail."""

from __future__ import annotations

from typing import Any

import httpx
import jwt

from tests.integration.sessions.conftest import bearer, login, register


def scopes(token: str) -> set[str]:
    return set(jwt.decode(token, options={"verify_signature": False})["scope"].split())


async def test_the_admin_scope_is_never_granted_by_default(
    auth_client: httpx.AsyncClient, admin_tokens: dict[str, Any]
) -> None:
    plain = (await login(auth_client, "root-admin")).json()
    assert scopes(plain["access_token"]) == {"notes:read", "notes:write"}
    assert "admin" in scopes(admin_tokens["access_token"])


async def test_an_admins_token_without_the_admin_scope_gets_403_insufficient_scope(
    auth_client: httpx.AsyncClient, admin_tokens: dict[str, Any]
) -> None:
    for scope in (None, "notes:read"):
        form = {"scope": scope} if scope else {}
        narrowed = (await login(auth_client, "root-admin", **form)).json()
        victim = await register(auth_client)
        for method, path in (
            ("GET", "/admin/sessions"),
            ("GET", "/admin/events"),
            ("DELETE", f"/admin/users/{victim['id']}/sessions"),
        ):
            response = await auth_client.request(
                method, path, headers=bearer(narrowed["access_token"])
            )
            assert response.status_code == 403, (scope, path)
            challenge = response.headers["WWW-Authenticate"]
            assert 'error="insufficient_scope"' in challenge and 'scope="admin"' in challenge
    allowed = await auth_client.get("/admin/sessions", headers=bearer(admin_tokens["access_token"]))
    assert allowed.status_code == 200


async def test_a_non_admin_asking_for_the_admin_scope_gets_invalid_scope(
    auth_client: httpx.AsyncClient,
) -> None:
    user = await register(auth_client)
    response = await login(auth_client, user["username"], scope="notes:read admin")
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


async def test_the_admin_scope_comes_only_through_clients_allowed_it(
    auth_client: httpx.AsyncClient, admin_tokens: dict[str, Any], auth_app: Any
) -> None:
    from auth_server.oauth.clients import create_client
    from shared.service.db import transaction

    # A first-party client with the password grant but without `admin` (before contract §8.1,
    # `web-page` was such a client; it now has the code grant only).
    async with transaction(auth_app.state.auth.session_maker) as db:
        await create_client(
            db,
            client_id="cli-tool",
            confidential=False,
            grant_types=["password"],
            scopes=["notes:read", "notes:write"],
            first_party=True,
        )
    response = await auth_client.post(
        "/token",
        data={
            "grant_type": "password",
            "username": "root-admin",
            "password": "correct horse battery staple 42",
            "client_id": "cli-tool",
            "scope": "admin",
        },
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


async def test_a_refresh_keeps_or_narrows_the_admin_scope_but_never_adds_it(
    auth_client: httpx.AsyncClient, admin_tokens: dict[str, Any]
) -> None:
    plain = (await login(auth_client, "root-admin")).json()
    widened = await auth_client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": plain["refresh_token"],
            "client_id": "web",
            "scope": "notes:read admin",
        },
    )
    assert widened.status_code == 400 and widened.json()["error"] == "invalid_scope"
