"""The hosted sign-in of an account with a second factor: after the password, a one-time code
(TOTP or recovery code) before any code for the app; the password alone signs nobody in."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt

from auth_server.factors import totp
from tests.integration.auth.conftest import register
from tests.integration.factors.conftest import ACTOR
from tests.integration.oidc.conftest import (
    APP,
    Person,
    add_client,
    authorize_params,
    exchange,
    form_fields,
    pkce,
    query,
)


async def with_totp(auth_app: Any, user_id: str) -> str:
    state = auth_app.state.auth
    now = time.time()
    async with state.session_maker() as db:
        enrolment = await state.factors.begin_totp(db, user_id, auth_time=now)
        code = totp.code_at(enrolment.secret, totp.current_step(now))
        await state.factors.confirm_totp(
            db, user_id, enrolment.id, code, auth_time=now, actor=ACTOR
        )
        await db.commit()
    return str(enrolment.secret)


async def test_an_account_with_totp_signs_in_with_password_then_code(
    auth_client: httpx.AsyncClient, auth_app: Any
) -> None:
    await add_client(auth_app, "first", first_party=True)
    user = await register(auth_client)
    seed = await with_totp(auth_app, user["id"])
    person = Person(auth_client, user["username"])
    verifier, challenge = pkce()
    started = await auth_client.get("/authorize", params=authorize_params("first", challenge))
    after_password = await person.sign_in(started.headers["location"])
    # No code for the app, no browser session: the code page.
    assert after_password.status_code == 303
    assert after_password.headers["location"].startswith("/login/code?flow=")
    assert "notes_auth_session" not in after_password.headers.get("set-cookie", "")
    page = await auth_client.get(after_password.headers["location"])
    assert 'autocomplete="one-time-code"' in page.text
    fields = form_fields(page.text)
    wrong = await auth_client.post("/login/code", data=fields | {"code": "000000"})
    assert wrong.status_code == 400 and "wrong" in wrong.text
    # A code of the next step (the one just used for the enrolment can't be used again).
    code = totp.code_at(seed, totp.current_step(time.time()) + 1)
    right = await auth_client.post("/login/code", data=fields | {"code": code})
    assert right.status_code == 303 and right.headers["location"].startswith(APP)
    tokens = (
        await exchange(auth_client, "first", query(right.headers["location"])["code"], verifier)
    ).json()
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == "urn:notes-auth:acr:mfa"
    # The code can't be replayed in the same flow.
    again = await auth_client.post("/login/code", data=fields | {"code": code})
    assert again.status_code == 400


async def test_the_code_page_needs_its_password_step_and_its_csrf_token(
    auth_client: httpx.AsyncClient, auth_app: Any
) -> None:
    user = await register(auth_client)
    await with_totp(auth_app, user["id"])
    answer = await Person(auth_client, user["username"]).sign_in()
    location = answer.headers["location"]
    assert location.startswith("/login/code?flow=")
    fields = form_fields((await auth_client.get(location)).text)
    forged = await auth_client.post("/login/code", data={"flow": fields["flow"], "code": "123456"})
    assert forged.status_code == 403
    nowhere = await auth_client.get("/login/code?flow=made-up")
    assert nowhere.status_code == 400
