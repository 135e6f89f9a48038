"""The web page's own client (`web-page`, contract §7 and §8.1): code + PKCE only; its refresh
token lives only in an HttpOnly, SameSite=Strict cookie scoped to the token and revoke paths,
never in a JSON body; cookie-bearing requests must come from the page's origin."""

from __future__ import annotations

from typing import Any

import httpx

from auth_server.persistence.models import Client
from shared.service.db import transaction
from tests.integration.auth.conftest import PASSWORD, register
from tests.integration.oidc.conftest import Person, pkce, query

PAGE = {"Origin": "http://127.0.0.1:8001"}
CALLBACK = "http://127.0.0.1:8001/callback"


async def page_code(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    """The page's sign-in: the hosted sign-in, then a code for `web-page`; the form that
    exchanges it."""
    await Person(client, username).sign_in()
    verifier, challenge = pkce()
    response = await client.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": "web-page",
            "redirect_uri": CALLBACK,
            "scope": "openid notes:read notes:write",
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code == 302, response.text
    return {
        "grant_type": "authorization_code",
        "code": query(response.headers["location"])["code"],
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
        "client_id": "web-page",
    }


async def page_login(
    client: httpx.AsyncClient, username: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post("/token", data=await page_code(client, username), headers=headers)


async def test_the_page_client_may_not_use_the_password_grant(
    auth_client: httpx.AsyncClient,
) -> None:
    """Contract §8.1: the page never sees a password."""
    user = await register(auth_client)
    response = await auth_client.post(
        "/token",
        data={
            "grant_type": "password",
            "username": user["username"],
            "password": PASSWORD,
            "client_id": "web-page",
        },
        headers=PAGE,
    )
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


REFRESH = {"grant_type": "refresh_token", "client_id": "web-page"}


async def test_a_page_login_sets_the_refresh_cookie_and_keeps_it_out_of_the_body(
    auth_client: httpx.AsyncClient,
) -> None:
    user = await register(auth_client)
    response = await page_login(auth_client, user["username"], PAGE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body and body["access_token"].count(".") == 2
    assert response.headers["Cache-Control"] == "no-store"
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 2
    for cookie, path in zip(cookies, ("/token", "/revoke"), strict=True):
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert cookie.startswith("notes_auth_refresh=")
        assert f"Path={path}" in cookie
        assert {"httponly", "samesite", "max-age"} <= attributes
        assert "samesite=strict" in cookie.lower()
        assert "secure" not in attributes  # plain-HTTP issuer on loopback; Secure under TLS


async def test_the_page_refreshes_with_its_cookie_and_the_cookie_rotates(
    auth_client: httpx.AsyncClient,
) -> None:
    user = await register(auth_client)
    await page_login(auth_client, user["username"], PAGE)
    first = auth_client.cookies.get("notes_auth_refresh", path="/token")
    refreshed = await auth_client.post("/token", data=REFRESH, headers=PAGE)
    assert refreshed.status_code == 200, refreshed.text
    assert "refresh_token" not in refreshed.json()
    second = auth_client.cookies.get("notes_auth_refresh", path="/token")
    assert second and second != first
    me = await auth_client.get(
        "/users/me", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    )
    assert me.status_code == 200


async def test_a_refresh_token_in_the_form_is_refused_for_the_page_client(
    auth_client: httpx.AsyncClient,
) -> None:
    user = await register(auth_client)
    await page_login(auth_client, user["username"], PAGE)
    token = auth_client.cookies.get("notes_auth_refresh", path="/token") or ""
    response = await auth_client.post(
        "/token", data=REFRESH | {"refresh_token": token}, headers=PAGE
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_without_a_cookie_there_is_no_session_to_refresh(
    auth_client: httpx.AsyncClient,
) -> None:
    response = await auth_client.post("/token", data=REFRESH, headers=PAGE)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_cookie_requests_from_another_origin_are_refused(
    auth_client: httpx.AsyncClient,
) -> None:
    user = await register(auth_client)
    exchange = await page_code(auth_client, user["username"])
    for headers in ({}, {"Origin": "https://evil.example"}):
        login = await auth_client.post("/token", data=exchange, headers=headers)
        assert login.status_code == 400 and login.json()["error"] == "invalid_request"
    # Refused before the code was looked at: the page itself still exchanges it.
    assert (await auth_client.post("/token", data=exchange, headers=PAGE)).status_code == 200
    forged = await auth_client.post(
        "/token", data=REFRESH, headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 400
    revoke = await auth_client.post(
        "/revoke", data={"client_id": "web-page"}, headers={"Origin": "https://evil.example"}
    )
    assert revoke.status_code == 400
    # The session survived both attempts.
    assert (await auth_client.post("/token", data=REFRESH, headers=PAGE)).status_code == 200


async def test_logging_out_revokes_the_session_and_clears_the_cookie(
    auth_client: httpx.AsyncClient,
) -> None:
    user = await register(auth_client)
    login = await page_login(auth_client, user["username"], PAGE)
    token = auth_client.cookies.get("notes_auth_refresh", path="/token")
    revoked = await auth_client.post("/revoke", data={"client_id": "web-page"}, headers=PAGE)
    assert revoked.status_code == 200
    cleared = revoked.headers.get_list("set-cookie")
    assert len(cleared) == 2 and all("Max-Age=0" in c for c in cleared)
    assert auth_client.cookies.get("notes_auth_refresh", path="/token") is None
    me = await auth_client.get(
        "/users/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.status_code == 401
    # The old cookie, replayed, is refused, and the refusal clears it again.
    auth_client.cookies.set("notes_auth_refresh", token or "", path="/token")
    again = await auth_client.post("/token", data=REFRESH, headers=PAGE)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert any("Max-Age=0" in c for c in again.headers.get_list("set-cookie"))


async def test_credentialed_cors_names_the_exact_origin(auth_client: httpx.AsyncClient) -> None:
    preflight = await auth_client.options(
        "/token",
        headers=PAGE
        | {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == PAGE["Origin"]
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    other = await auth_client.options(
        "/token",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_the_web_client_keeps_its_json_refresh_token(
    auth_client: httpx.AsyncClient,
) -> None:
    user = await register(auth_client)
    response = await auth_client.post(
        "/token",
        data={
            "grant_type": "password",
            "username": user["username"],
            "password": PASSWORD,
            "client_id": "web",
        },
    )
    assert response.status_code == 200 and response.json()["refresh_token"]
    assert "set-cookie" not in response.headers


async def test_the_page_clients_uris_follow_the_page_origins(auth_app: Any) -> None:
    """Contract §8.1: `{origin}/callback` and `{origin}/` for each origin in AUTH_CORS_ORIGINS,
    set when the server starts (and at `migrate`)."""
    state = auth_app.state.auth
    async with transaction(state.session_maker) as db:
        client = await db.get(Client, "web-page")
    assert client is not None and client.first_party
    assert client.grant_types == "authorization_code refresh_token"
    origins = state.settings.cors_origins
    assert client.redirect_uris.split() == [f"{o}/callback" for o in origins]
    assert client.post_logout_redirect_uris.split() == [f"{o}/" for o in origins]
