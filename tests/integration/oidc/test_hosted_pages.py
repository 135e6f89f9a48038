"""The hosted pages as plain HTML forms (JavaScript off): sign-in, sign-up, consent; CSRF on
each form; the browser session's cookie; errors written for a person."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.auth.conftest import PASSWORD, register
from tests.integration.oidc.conftest import (
    APP,
    Person,
    add_client,
    authorize_params,
    form_fields,
    get_code,
    pkce,
    query,
)


@pytest.fixture
async def third_party(auth_app: Any) -> str:
    await add_client(auth_app, "third-party-app")
    return "third-party-app"


async def _flow_location(client: httpx.AsyncClient, client_id: str, **extra: str) -> str:
    _, challenge = pkce()
    response = await client.get(
        "/authorize", params=authorize_params(client_id, challenge, **extra)
    )
    assert response.status_code == 302, response.text
    return str(response.headers["location"])


async def test_the_sign_in_page_is_a_form_that_posts_with_the_right_autocomplete_tokens(
    auth_client: httpx.AsyncClient,
) -> None:
    page = await auth_client.get("/login")
    assert page.status_code == 200
    html = page.text
    assert '<form class="form" method="post" action="/login"' in html
    assert 'autocomplete="username"' in html and 'autocomplete="current-password"' in html
    assert '<label for="username">' in html and '<label for="password">' in html
    assert 'role="alert"' in html and 'name="csrf"' in html
    assert "<script>" not in html and " style=" not in html and " onclick" not in html
    assert page.headers["cache-control"] == "no-store"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "form-action 'self'" in policy
    assert "unsafe" not in policy and "frame-ancestors 'none'" in policy
    cookie = page.headers["set-cookie"]
    assert "notes_auth_csrf=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    signup = await auth_client.get("/signup")
    assert 'autocomplete="new-password"' in signup.text and 'autocomplete="email"' in signup.text


async def test_signing_in_sets_an_httponly_lax_session_cookie(person: Person) -> None:
    response = await person.sign_in()
    assert response.status_code == 303
    cookie = next(c for c in response.headers.get_list("set-cookie") if "notes_auth_session" in c)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain-HTTP loopback issuer; Secure under TLS
    page = await person.client.get(response.headers["location"])
    assert "You&#39;re signed in" in page.text or "You're signed in" in page.text
    assert person.username in page.text


async def test_a_wrong_password_and_an_unknown_user_read_the_same(
    auth_client: httpx.AsyncClient,
) -> None:
    user = await register(auth_client)
    answers = []
    for username, password in ((user["username"], "wrong password!!"), ("nobody-here", PASSWORD)):
        wrong = await Person(auth_client, username, password).sign_in()
        assert wrong.status_code == 400
        answers.append(wrong.text.replace(username, "NAME"))
        assert "That username or password is wrong" in wrong.text
        assert 'value="' + username + '"' in wrong.text  # kept, so only the password is retyped
    assert answers[0] == answers[1]


async def test_a_locked_out_sign_in_says_so_with_retry_after(
    auth_client: httpx.AsyncClient, auth_settings: Any
) -> None:
    user = await register(auth_client)
    person = Person(auth_client, user["username"], "wrong password!!")
    status = 0
    for _ in range(auth_settings.login_failure_limit + 1):
        status = (last := await person.sign_in()).status_code
    assert status == 429 and int(last.headers["retry-after"]) > 0
    assert "paused" in last.text


async def test_sign_up_creates_the_account_signs_in_and_continues_the_flow(
    auth_client: httpx.AsyncClient, auth_app: Any
) -> None:
    await add_client(auth_app, "first", first_party=True)
    flow = await _flow_location(auth_client, "first")
    login_page = await auth_client.get(flow)
    signup_link = flow.replace("/login", "/signup")
    assert f'href="{signup_link}"' in login_page.text.replace("&amp;", "&")
    page = await auth_client.get(signup_link)
    fields = form_fields(page.text)
    weak = await auth_client.post(
        "/signup",
        data=fields
        | {"username": "newbie", "email": "newbie@example.com", "password": "password123"},
    )
    assert weak.status_code == 422 and "most common passwords" in weak.text
    assert 'aria-invalid="true"' in weak.text and 'value="newbie"' in weak.text
    done = await auth_client.post(
        "/signup",
        data=fields | {"username": "newbie", "email": "newbie@example.com", "password": PASSWORD},
    )
    assert done.status_code == 303 and done.headers["location"].startswith(APP)
    assert "code" in query(done.headers["location"])
    taken = await auth_client.post(
        "/signup",
        data=form_fields((await auth_client.get("/signup")).text)
        | {"username": "newbie", "email": "other@example.com", "password": PASSWORD},
    )
    assert taken.status_code == 409 and "already registered" in taken.text


# --- Consent ------------------------------------------------------------------------------------


async def test_a_third_party_needs_consent_which_is_remembered_per_scopes(
    person: Person, third_party: str
) -> None:
    await person.sign_in()
    consent = await _flow_location(person.client, third_party)
    assert consent.startswith("/consent?flow=")
    page = await person.client.get(consent)
    assert "third-party-app" in page.text and "Read your notes" in page.text
    assert "See your email address" in page.text
    allowed = await person.client.post(
        "/consent", data=form_fields(page.text) | {"decision": "allow"}
    )
    assert allowed.status_code == 303 and "code" in query(allowed.headers["location"])
    # Remembered: the same scopes go straight through, fewer too; more ask again.
    again = await _flow_location(person.client, third_party)
    assert again.startswith(APP)
    fewer = await _flow_location(person.client, third_party, scope="openid")
    assert fewer.startswith(APP)
    more = await _flow_location(person.client, third_party, scope="openid notes:write")
    assert more.startswith("/consent?flow=")
    asked = await _flow_location(person.client, third_party, prompt="consent")
    assert asked.startswith("/consent?flow=")


async def test_consent_cant_be_skipped_and_a_refusal_is_access_denied(
    person: Person, third_party: str
) -> None:
    await person.sign_in()
    silent = await _flow_location(person.client, third_party, prompt="none")
    answer = query(silent)
    assert answer["error"] == "consent_required" and answer["state"] == "xyz-state"
    page = await person.client.get(await _flow_location(person.client, third_party))
    denied = await person.client.post(
        "/consent", data=form_fields(page.text) | {"decision": "deny"}
    )
    assert query(denied.headers["location"])["error"] == "access_denied"
    # No code was issued for the refusal, and no consent remembered.
    still = await _flow_location(person.client, third_party)
    assert still.startswith("/consent?flow=")


async def test_a_first_party_client_needs_no_consent(person: Person, auth_app: Any) -> None:
    await add_client(auth_app, "ours", first_party=True)
    _, challenge = pkce()
    answer = await get_code(person, "ours", challenge)
    assert "code" in answer


# --- CSRF -------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["login", "signup", "consent", "logout"])
async def test_every_hosted_form_refuses_a_post_without_its_csrf_token(
    person: Person, third_party: str, form: str
) -> None:
    await person.sign_in()
    location = {
        "login": "/login",
        "signup": "/signup",
        "consent": await _flow_location(person.client, third_party),
        "logout": "/logout",
    }[form]
    page = await person.client.get(location)
    fields = form_fields(page.text)
    assert fields.get("csrf")
    filled = fields | {
        "username": person.username,
        "email": "x@example.com",
        "password": PASSWORD,
        "decision": "allow",
        "confirm": "yes",
    }
    path = "/" + form
    forged = [
        {k: v for k, v in filled.items() if k != "csrf"},
        filled | {"csrf": "0" * 64},
    ]
    for data in forged:
        response = await person.client.post(path, data=data)
        assert response.status_code == 403, (form, response.status_code)
        assert "This form can" in response.text and 'role="alert"' in response.text
    # From another site, even with the token.
    other_site = await person.client.post(
        path, data=filled, headers={"Origin": "https://evil.example"}
    )
    assert other_site.status_code == 403
    # A token of another form is refused too.
    other_form = "/logout" if form == "signup" else "/signup"
    other_token = form_fields((await person.client.get(other_form)).text)["csrf"]
    crossed = await person.client.post(path, data=filled | {"csrf": other_token})
    assert crossed.status_code == 403


async def test_a_flow_started_in_another_browser_leads_nowhere(
    auth_app: Any, person: Person, third_party: str
) -> None:
    flow = await _flow_location(person.client, third_party)
    transport = httpx.ASGITransport(app=auth_app, client=("127.0.0.1", 50001))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as other:
        page = await other.get(flow)
        assert page.status_code == 400 and "expired" in page.text


async def test_unreadable_requests_get_a_page_not_a_500(auth_client: httpx.AsyncClient) -> None:
    for path in ("/login", "/signup", "/consent", "/logout"):
        response = await auth_client.post(
            path, content=b"\xff\xfe", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert 400 <= response.status_code < 500, path
    odd = await auth_client.get("/authorize?client_id=%FF%FE")
    assert odd.status_code == 400 and odd.headers["content-type"].startswith("text/html")
    assert (await auth_client.get("/consent?flow=nope")).status_code == 400


async def test_the_authorization_endpoint_and_the_pages_answer_no_cors(
    auth_client: httpx.AsyncClient,
) -> None:
    """RFC 9700 §2.6: the authorization endpoint MUST NOT support CORS."""
    page = {"Origin": "http://127.0.0.1:8001"}  # an allowed origin, for the token endpoint
    for path in ("/authorize", "/login", "/signup", "/consent", "/logout"):
        preflight = await auth_client.options(
            path, headers=page | {"Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers, path
        plain = await auth_client.get(path, headers=page)
        assert "access-control-allow-origin" not in plain.headers, path
    token = await auth_client.options(
        "/token", headers=page | {"Access-Control-Request-Method": "POST"}
    )
    assert token.headers["access-control-allow-origin"] == page["Origin"]
