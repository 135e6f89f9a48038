"""RP-Initiated Logout 1.0 at /logout, and the browser session ending its children."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.oidc.conftest import (
    APP_LOGOUT,
    Person,
    add_client,
    exchange,
    form_fields,
    get_code,
    pkce,
    query,
)


@pytest.fixture
async def signed_in(person: Person, auth_app: Any) -> dict[str, Any]:
    """A person signed in to a first-party app: its tokens."""
    await add_client(auth_app, "app", first_party=True)
    verifier, challenge = pkce()
    answer = await get_code(person, "app", challenge)
    response = await exchange(person.client, "app", answer["code"], verifier)
    assert response.status_code == 200
    return dict(response.json())


async def live(client: httpx.AsyncClient, access_token: str) -> bool:
    response = await client.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    return response.status_code == 200


async def test_a_valid_hint_ends_the_browser_session_and_its_children_then_redirects(
    person: Person, signed_in: dict[str, Any]
) -> None:
    assert await live(person.client, signed_in["access_token"])
    response = await person.client.get(
        "/logout",
        params={
            "id_token_hint": signed_in["id_token"],
            "post_logout_redirect_uri": APP_LOGOUT,
            "state": "bye",
        },
    )
    assert response.status_code == 302
    assert response.headers["location"] == f"{APP_LOGOUT}?state=bye"
    assert any(
        "notes_auth_session=" in c and "Max-Age=0" in c
        for c in response.headers.get_list("set-cookie")
    )
    # The app's session (a child) ended with it: its tokens are refused.
    assert not await live(person.client, signed_in["access_token"])
    # The next /authorize asks for the password again.
    _, challenge = pkce()
    again = await person.client.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": "app",
            "redirect_uri": "https://app.example/callback",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert again.headers["location"].startswith("/login?flow=")


async def test_an_expired_hint_is_still_a_hint(
    person: Person, signed_in: dict[str, Any], auth_app: Any
) -> None:
    import jwt

    claims = jwt.decode(signed_in["id_token"], options={"verify_signature": False})
    state = auth_app.state.auth
    key = await state.keys.signing_key()
    expired = jwt.encode(
        claims | {"exp": claims["iat"] - 10},
        key.private_key,
        algorithm="RS256",
        headers={"kid": key.kid, "typ": "JWT"},
    )
    response = await person.client.get("/logout", params={"id_token_hint": expired})
    assert response.status_code == 200 and "signed out" in response.text
    assert not await live(person.client, signed_in["access_token"])


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "https://app.example/?next=https://evil.example",
        "https://app.example",
        "https://APP.example/",
    ],
)
async def test_an_unregistered_post_logout_uri_is_never_followed(
    person: Person, signed_in: dict[str, Any], target: str
) -> None:
    response = await person.client.get(
        "/logout",
        params={"id_token_hint": signed_in["id_token"], "post_logout_redirect_uri": target},
    )
    assert response.status_code == 400 and "location" not in response.headers
    assert "never registered" in response.text
    # Nothing ended.
    assert await live(person.client, signed_in["access_token"])


async def test_a_forged_hint_is_refused_and_ends_nothing(
    person: Person, signed_in: dict[str, Any]
) -> None:
    header, payload, signature = signed_in["id_token"].split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    response = await person.client.get(
        "/logout", params={"id_token_hint": forged, "post_logout_redirect_uri": APP_LOGOUT}
    )
    assert response.status_code == 400 and "location" not in response.headers
    assert await live(person.client, signed_in["access_token"])


async def test_without_a_hint_it_asks_first_and_redirects_only_where_the_client_registered(
    person: Person, signed_in: dict[str, Any]
) -> None:
    asked = await person.client.get(
        "/logout",
        params={"client_id": "app", "post_logout_redirect_uri": APP_LOGOUT, "state": "s1"},
    )
    assert asked.status_code == 200 and "Sign out?" in asked.text
    assert "form-action 'self' https://app.example" in asked.headers["content-security-policy"]
    # Asking ended nothing.
    assert await live(person.client, signed_in["access_token"])
    confirmed = await person.client.post("/logout", data=form_fields(asked.text))
    assert confirmed.status_code == 303
    assert confirmed.headers["location"] == f"{APP_LOGOUT}?state=s1"
    assert not await live(person.client, signed_in["access_token"])


@pytest.mark.parametrize(
    "params",
    [
        {"post_logout_redirect_uri": APP_LOGOUT},
        {"client_id": "app", "post_logout_redirect_uri": "https://evil.example/"},
        {"client_id": "nobody", "post_logout_redirect_uri": APP_LOGOUT},
    ],
)
async def test_without_a_hint_an_unverifiable_redirect_is_an_error_page(
    person: Person, signed_in: dict[str, Any], params: dict[str, str]
) -> None:
    for method in ("GET", "POST"):
        if method == "GET":
            response = await person.client.get("/logout", params=params)
        else:
            response = await person.client.post("/logout", data=params)
        assert response.status_code == 400 and "location" not in response.headers
    assert await live(person.client, signed_in["access_token"])


async def test_a_logout_post_with_a_hint_works_too(
    person: Person, signed_in: dict[str, Any]
) -> None:
    response = await person.client.post(
        "/logout",
        data={"id_token_hint": signed_in["id_token"], "post_logout_redirect_uri": APP_LOGOUT},
    )
    assert response.status_code == 303 and response.headers["location"] == APP_LOGOUT
    assert not await live(person.client, signed_in["access_token"])


async def test_log_out_everywhere_ends_browser_sessions_too(
    person: Person, signed_in: dict[str, Any]
) -> None:
    bearer = {"Authorization": f"Bearer {signed_in['access_token']}"}
    listed = (await person.client.get("/sessions", headers=bearer)).json()
    browser = next(s for s in listed if s["kind"] == "browser")
    child = next(s for s in listed if s["kind"] == "client")
    assert child["parent_id"] == browser["id"] and browser["client_id"] is None
    assert (await person.client.delete("/sessions", headers=bearer)).status_code == 204
    page = await person.client.get("/login")
    assert "You&#39;re signed in" not in page.text and "You're signed in" not in page.text


async def test_ending_the_browser_session_by_id_ends_its_children(
    person: Person, signed_in: dict[str, Any], auth_client: httpx.AsyncClient
) -> None:
    bearer = {"Authorization": f"Bearer {signed_in['access_token']}"}
    # A second app's session, signed in through the same browser session.
    from tests.integration.auth.conftest import login

    other = (await login(auth_client, person.username)).json()
    listed = (await person.client.get("/sessions", headers=bearer)).json()
    browser = next(s for s in listed if s["kind"] == "browser")
    ended = await person.client.delete(
        f"/sessions/{browser['id']}",
        headers={"Authorization": f"Bearer {other['access_token']}"},
    )
    assert ended.status_code == 204
    assert not await live(person.client, signed_in["access_token"])
    # The password-grant session of `web` had no parent: it lives on.
    me = await auth_client.get(
        "/users/me", headers={"Authorization": f"Bearer {other['access_token']}"}
    )
    assert me.status_code == 200
    assert query  # (imported for the other tests)
