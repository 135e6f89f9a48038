"""The authorization code grant with PKCE, end to end in process: /authorize, the hosted
sign-in, the code, /token (RFC 6749 §4.1, RFC 7636, OIDC Core §3.1, RFC 9207, RFC 9700 §2.1)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import jwt
import pytest

from tests.integration.oidc.conftest import (
    APP,
    ISSUER,
    Person,
    add_client,
    authorize_params,
    exchange,
    get_code,
    pkce,
    query,
)


@pytest.fixture
async def first_party(auth_app: Any) -> str:
    await add_client(auth_app, "first", first_party=True)
    return "first"


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


async def test_code_with_pkce_gives_tokens_an_id_token_and_a_child_session(
    person: Person, first_party: str
) -> None:
    verifier, challenge = pkce()
    answer = await get_code(person, first_party, challenge)
    assert answer["state"] == "xyz-state" and answer["iss"] == ISSUER
    response = await exchange(person.client, first_party, answer["code"], verifier)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["refresh_token"]
    assert response.headers["Cache-Control"] == "no-store"

    header = jwt.get_unverified_header(body["id_token"])
    assert header["typ"] == "JWT" and header["alg"] == "RS256"
    id_token = claims_of(body["id_token"])
    access = claims_of(body["access_token"])
    assert id_token["aud"] == first_party and id_token["iss"] == ISSUER
    assert id_token["nonce"] == "n-0S6_WzA2Mj"
    assert id_token["amr"] == ["pwd"] and id_token["acr"] == "urn:notes-auth:acr:pwd"
    assert id_token["sid"] == access["sid"] and id_token["sub"] == access["sub"]
    assert {"iss", "sub", "aud", "exp", "iat", "auth_time", "at_hash"} <= set(id_token)
    from auth_server.oidc.id_token import at_hash

    assert id_token["at_hash"] == at_hash(body["access_token"])
    assert access["auth_time"] == id_token["auth_time"]
    assert access["amr"] == ["pwd"] and access["acr"] == "urn:notes-auth:acr:pwd"

    # The browser session and the client's child session are both listed, by kind.
    sessions = await person.client.get(
        "/sessions", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert sessions.status_code == 200
    kinds = sorted(s["kind"] for s in sessions.json())
    assert kinds == ["browser", "client"]


async def test_userinfo_answers_by_scope_on_get_and_post(person: Person, first_party: str) -> None:
    verifier, challenge = pkce()
    answer = await get_code(person, first_party, challenge)
    tokens = (await exchange(person.client, first_party, answer["code"], verifier)).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    for method in ("GET", "POST"):
        info = await person.client.request(method, "/userinfo", headers=bearer)
        assert info.status_code == 200
        body = info.json()
        assert body["sub"] == claims_of(tokens["id_token"])["sub"]
        assert body["preferred_username"] == person.username
        assert body["email"] == f"{person.username}@example.com"
        assert body["email_verified"] is False


async def test_userinfo_refuses_a_token_without_openid(
    auth_client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    info = await auth_client.get(
        "/userinfo", headers={"Authorization": f"Bearer {user_tokens['access_token']}"}
    )
    assert info.status_code == 403
    assert 'error="insufficient_scope"' in info.headers["www-authenticate"]
    assert (await auth_client.get("/userinfo")).status_code == 401


async def test_a_refreshed_id_token_has_no_nonce_and_keeps_the_sign_in(
    person: Person, first_party: str
) -> None:
    verifier, challenge = pkce()
    answer = await get_code(person, first_party, challenge)
    first = (await exchange(person.client, first_party, answer["code"], verifier)).json()
    refreshed = await person.client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": first_party,
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    again = claims_of(refreshed.json()["id_token"])
    original = claims_of(first["id_token"])
    assert "nonce" not in again
    for claim in ("auth_time", "amr", "acr", "sid", "sub", "aud"):
        assert again[claim] == original[claim]
    access = claims_of(refreshed.json()["access_token"])
    assert access["auth_time"] == original["auth_time"] and access["amr"] == ["pwd"]


# --- PKCE ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"code_challenge": None}, "code_challenge is required"),
        ({"code_challenge_method": "plain"}, "must be S256"),
        ({"code_challenge_method": None}, "must be S256"),
        ({"code_challenge": "short"}, "not an S256 challenge"),
    ],
    ids=["missing", "plain", "no-method", "malformed"],
)
async def test_authorize_without_s256_pkce_is_refused_at_the_redirect_uri(
    person: Person, first_party: str, change: dict[str, str | None], words: str
) -> None:
    _, challenge = pkce()
    params = {
        k: v
        for k, v in (authorize_params(first_party, challenge) | change).items()
        if v is not None
    }
    response = await person.client.get("/authorize", params=params)
    assert response.status_code == 302
    answer = query(response.headers["location"])
    assert response.headers["location"].startswith(APP)
    assert answer["error"] == "invalid_request" and words in answer["error_description"]
    assert answer["state"] == "xyz-state" and answer["iss"] == ISSUER


async def test_a_confidential_client_needs_pkce_too(person: Person, auth_app: Any) -> None:
    await add_client(auth_app, "server-side", confidential=True, first_party=True)
    params = authorize_params("server-side", "x")
    del params["code_challenge"]
    response = await person.client.get("/authorize", params=params)
    assert query(response.headers["location"])["error"] == "invalid_request"


async def test_a_code_without_its_verifier_or_with_another_is_refused(
    person: Person, first_party: str
) -> None:
    verifier, challenge = pkce()
    answer = await get_code(person, first_party, challenge)
    # The downgrade: no verifier at all.
    missing = await exchange(person.client, first_party, answer["code"], None)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_grant"
    wrong = await exchange(person.client, first_party, answer["code"], pkce()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    # Neither attempt spent the code: its owner still exchanges it.
    right = await exchange(person.client, first_party, answer["code"], verifier)
    assert right.status_code == 200


async def test_a_code_issued_without_a_challenge_accepts_no_verifier(
    person: Person, first_party: str, auth_app: Any
) -> None:
    """Such a code can't be made through /authorize; one planted in the table (an upgrade, a
    bug) is still refused with any verifier (keycloak#26430, zitadel/oidc#741)."""
    from sqlalchemy import update

    from auth_server.oauth.codes import hash_code
    from auth_server.persistence.models import AuthorizationCode
    from shared.service.db import transaction

    verifier, challenge = pkce()
    answer = await get_code(person, first_party, challenge)
    async with transaction(auth_app.state.auth.session_maker) as db:
        await db.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.code_hash == hash_code(answer["code"]))
            .values(code_challenge=None)
        )
    refused = await exchange(person.client, first_party, answer["code"], verifier)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


# --- Redirect URIs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://APP.example/callback",
        "https://app.example/Callback",
        "https://app.example/callback/extra",
        "https://app.example/callback?x=1",
        "https://app.example/callback#frag",
        "https://evil@app.example/callback",
        "https://app.example/callback/..;/evil",
        "http://app.example/callback",
        "https://app.example:8443/callback",
        "https://app.example.evil/callback",
        "https://app.example/callbac",
        "",
    ],
)
async def test_a_redirect_uri_that_is_not_registered_exactly_gets_an_error_page(
    person: Person, first_party: str, redirect_uri: str
) -> None:
    _, challenge = pkce()
    response = await person.client.get(
        "/authorize", params=authorize_params(first_party, challenge, redirect_uri=redirect_uri)
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in response.text


async def test_an_unknown_client_gets_an_error_page_never_a_redirect(person: Person) -> None:
    _, challenge = pkce()
    response = await person.client.get(
        "/authorize", params=authorize_params("nobody-registered-this", challenge)
    )
    assert response.status_code == 400 and "location" not in response.headers
    assert "isn&#39;t registered" in response.text or "isn't registered" in response.text


@pytest.mark.parametrize(
    ("registered", "presented", "native", "allowed"),
    [
        ("http://127.0.0.1/callback", "http://127.0.0.1:51004/callback", True, True),
        ("http://[::1]/callback", "http://[::1]:61000/callback", True, True),
        ("http://127.0.0.1:4000/callback", "http://127.0.0.1:4001/callback", True, True),
        ("http://127.0.0.1/callback", "http://127.0.0.1:51004/callback", False, False),
        ("http://127.0.0.1/callback", "http://localhost:51004/callback", True, False),
        ("http://127.0.0.1/callback", "http://127.0.0.1:51004/other", True, False),
        ("http://127.0.0.1/callback", "https://127.0.0.1:51004/callback", True, False),
        ("http://127.0.0.1/callback", "HTTP://127.0.0.1:51004/callback", True, False),
    ],
)
async def test_only_a_native_clients_loopback_redirect_may_change_its_port(
    person: Person,
    auth_app: Any,
    registered: str,
    presented: str,
    native: bool,
    allowed: bool,
) -> None:
    client_id = f"app-{abs(hash((registered, presented, native))) % 10**8}"
    await add_client(
        auth_app, client_id, redirect_uris=[registered], native=native, first_party=True
    )
    _, challenge = pkce()
    response = await person.client.get(
        "/authorize", params=authorize_params(client_id, challenge, redirect_uri=presented)
    )
    if allowed:
        assert response.status_code == 302
        assert response.headers["location"].startswith(("/login", presented))
    else:
        assert response.status_code == 400 and "location" not in response.headers


# --- Codes ------------------------------------------------------------------------------------


async def test_a_replayed_code_is_refused_and_what_its_first_use_issued_is_revoked(
    person: Person, first_party: str
) -> None:
    verifier, challenge = pkce()
    answer = await get_code(person, first_party, challenge)
    first = await exchange(person.client, first_party, answer["code"], verifier)
    assert first.status_code == 200
    tokens = first.json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await person.client.get("/userinfo", headers=bearer)).status_code == 200

    replay = await exchange(person.client, first_party, answer["code"], verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # The access token and the refresh token of the first use no longer work...
    assert (await person.client.get("/userinfo", headers=bearer)).status_code == 401
    refreshed = await person.client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": first_party,
        },
    )
    assert refreshed.json()["error"] == "invalid_grant"
    # ...and the revocation feed tells resource servers about their session.
    feed = (await person.client.get("/revocations")).json()
    sid = claims_of(tokens["access_token"])["sid"]
    assert any(e["type"] == "sid" and e["value"] == sid for e in feed["events"]), feed


async def test_a_code_is_bound_to_its_client_and_its_redirect_uri(
    person: Person, first_party: str, auth_app: Any
) -> None:
    await add_client(auth_app, "other", first_party=True)
    verifier, challenge = pkce()
    answer = await get_code(person, first_party, challenge)
    stolen = await exchange(person.client, "other", answer["code"], verifier)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    moved = await exchange(
        person.client,
        first_party,
        answer["code"],
        verifier,
        redirect_uri="https://app.example/callback/other",
    )
    assert moved.status_code == 400 and moved.json()["error"] == "invalid_grant"
    assert (await exchange(person.client, first_party, answer["code"], verifier)).status_code == 200


async def test_a_code_lives_at_most_60_seconds(
    person: Person, first_party: str, auth_app: Any
) -> None:
    from sqlalchemy import select

    from auth_server.oauth.codes import hash_code
    from auth_server.persistence.models import AuthorizationCode
    from shared.service.db import transaction

    verifier, challenge = pkce()
    answer = await get_code(person, first_party, challenge)
    async with transaction(auth_app.state.auth.session_maker) as db:
        row = await db.scalar(
            select(AuthorizationCode).where(
                AuthorizationCode.code_hash == hash_code(answer["code"])
            )
        )
        assert row is not None
        assert row.expires_at - row.created_at <= dt.timedelta(seconds=60)
        row.expires_at = row.created_at  # as if 60 s had passed
    late = await exchange(person.client, first_party, answer["code"], verifier)
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"


async def test_only_the_hash_of_a_code_is_stored(
    person: Person, first_party: str, auth_app: Any
) -> None:
    from sqlalchemy import select

    from auth_server.persistence.models import AuthorizationCode
    from shared.service.db import transaction

    _, challenge = pkce()
    answer = await get_code(person, first_party, challenge)
    async with transaction(auth_app.state.auth.session_maker) as db:
        stored = (await db.scalars(select(AuthorizationCode.code_hash))).all()
    assert answer["code"] not in stored and len(stored) == 1 and len(stored[0]) == 64


async def test_a_resource_is_stored_and_must_match_at_the_token_endpoint(
    person: Person, first_party: str
) -> None:
    verifier, challenge = pkce()
    answer = await get_code(person, first_party, challenge, resource="http://127.0.0.1:8001")
    other = await exchange(
        person.client, first_party, answer["code"], verifier, resource="https://billing.example"
    )
    assert other.status_code == 400 and other.json()["error"] == "invalid_target"
    same = await exchange(
        person.client, first_party, answer["code"], verifier, resource="http://127.0.0.1:8001"
    )
    assert same.status_code == 200


async def test_two_resources_are_invalid_target(person: Person, first_party: str) -> None:
    _, challenge = pkce()
    params = list(authorize_params(first_party, challenge).items())
    params += [("resource", "https://a.example"), ("resource", "https://b.example")]
    response = await person.client.get("/authorize", params=params)
    assert query(response.headers["location"])["error"] == "invalid_target"


# --- Authorization responses: iss and state on errors, prompt, max_age ---------------------------


async def test_error_redirects_carry_state_and_iss(person: Person, first_party: str) -> None:
    _, challenge = pkce()
    cases = {
        "unsupported_response_type": {"response_type": "token"},
        "invalid_scope": {"scope": "openid made-up-scope"},
        "request_not_supported": {"request": "eyJhbGciOiJub25lIn0.e30."},
    }
    for error, change in cases.items():
        response = await person.client.get(
            "/authorize", params=authorize_params(first_party, challenge, **change)
        )
        answer = query(response.headers["location"])
        assert answer["error"] == error
        assert answer["state"] == "xyz-state" and answer["iss"] == ISSUER


async def test_prompt_none_without_a_session_is_login_required(
    auth_client: httpx.AsyncClient, first_party: str
) -> None:
    _, challenge = pkce()
    response = await auth_client.get(
        "/authorize", params=authorize_params(first_party, challenge, prompt="none")
    )
    assert response.status_code == 302
    answer = query(response.headers["location"])
    assert answer["error"] == "login_required"
    assert answer["state"] == "xyz-state" and answer["iss"] == ISSUER


async def test_prompt_none_with_a_session_signs_in_without_a_page(
    person: Person, first_party: str
) -> None:
    await person.sign_in()
    _, challenge = pkce()
    response = await person.client.get(
        "/authorize", params=authorize_params(first_party, challenge, prompt="none")
    )
    assert "code" in query(response.headers["location"])


async def test_one_sign_in_serves_every_first_party_app(
    person: Person, first_party: str, auth_app: Any
) -> None:
    await add_client(auth_app, "second-app", first_party=True)
    _, challenge = pkce()
    await get_code(person, first_party, challenge)
    response = await person.client.get(
        "/authorize", params=authorize_params("second-app", challenge)
    )
    assert response.status_code == 302 and "code" in query(response.headers["location"])


async def test_prompt_login_and_max_age_ask_for_the_password_again(
    person: Person, first_party: str
) -> None:
    await person.sign_in()
    _, challenge = pkce()
    for change in ({"prompt": "login"}, {"max_age": "0"}):
        response = await person.client.get(
            "/authorize", params=authorize_params(first_party, challenge, **change)
        )
        assert response.headers["location"].startswith("/login?flow="), change
        signed_in = await person.sign_in(response.headers["location"])
        assert "code" in query(signed_in.headers["location"])
        assert signed_in.status_code == 303


async def test_login_hint_fills_in_the_sign_in_page(person: Person, first_party: str) -> None:
    _, challenge = pkce()
    response = await person.client.get(
        "/authorize",
        params=authorize_params(first_party, challenge, login_hint="someone@example.com"),
    )
    page = await person.client.get(response.headers["location"])
    assert 'value="someone@example.com"' in page.text


async def test_post_to_authorize_answers_303(person: Person, first_party: str) -> None:
    await person.sign_in()
    _, challenge = pkce()
    response = await person.client.post("/authorize", data=authorize_params(first_party, challenge))
    assert response.status_code == 303 and "code" in query(response.headers["location"])


async def test_the_sign_in_redirect_to_the_app_is_a_303_and_its_page_allows_that_origin(
    person: Person, first_party: str
) -> None:
    _, challenge = pkce()
    response = await person.client.get(
        "/authorize", params=authorize_params(first_party, challenge)
    )
    page = await person.client.get(response.headers["location"])
    policy = page.headers["content-security-policy"]
    # Chromium applies form-action to the redirect after the POST: the app's origin is named.
    assert "form-action 'self' https://app.example;" in policy + ";"
    assert "script-src 'self'" in policy and "unsafe" not in policy
    signed_in = await person.sign_in(response.headers["location"])
    assert signed_in.status_code == 303 and signed_in.headers["location"].startswith(APP)


async def test_two_exchanges_of_one_code_at_once_give_one_answer_and_it_is_revoked(
    person: Person, first_party: str
) -> None:
    """A race (a stolen code used at the same moment): exactly one exchange wins the code, the
    other is a replay, and the replay ends what the winner got (on SQLite and PostgreSQL)."""
    import asyncio

    verifier, challenge = pkce()
    answer = await get_code(person, first_party, challenge)
    both = await asyncio.gather(
        *(exchange(person.client, first_party, answer["code"], verifier) for _ in range(2))
    )
    assert sorted(r.status_code for r in both) == [200, 400]
    winner = next(r for r in both if r.status_code == 200).json()
    info = await person.client.get(
        "/userinfo", headers={"Authorization": f"Bearer {winner['access_token']}"}
    )
    assert info.status_code == 401
