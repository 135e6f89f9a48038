"""The password grant for an account with a second factor (contract §8.3), over HTTP:
- without `otp`: 400 {"error":"mfa_required"}, and the attempt stays counted as a failed login;
- with a valid TOTP or recovery code: tokens whose access token says amr ["pwd","otp","mfa"],
  acr urn:notes-auth:acr:mfa and auth_time; the password alone: ["pwd"], acr pwd;
- a wrong or reused code: 400 invalid_grant; too many: 429; the code counts only in the factor
  throttle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from auth_server.factors import totp
from auth_server.main import create_app
from auth_server.settings import AuthSettings
from tests.integration.auth.conftest import PASSWORD, login, register
from tests.integration.factors.conftest import ACTOR, Clock


@pytest.fixture
async def served(factor_settings: AuthSettings) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    clock = Clock()
    app = create_app(factor_settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            yield c, (app.state.auth, clock)


async def with_totp(state: Any, clock: Clock, user_id: str) -> tuple[str, list[str]]:
    async with state.session_maker() as db:
        enrolment = await state.factors.begin_totp(db, user_id, auth_time=clock.now)
        code = totp.code_at(enrolment.secret, totp.current_step(clock.now))
        added = await state.factors.confirm_totp(
            db, user_id, enrolment.id, code, auth_time=clock.now, actor=ACTOR
        )
        await db.commit()
    return enrolment.secret, added.recovery_codes


def claims(body: dict[str, Any]) -> dict[str, Any]:
    return dict(jwt.decode(body["access_token"], options={"verify_signature": False}))


async def test_a_password_alone_gives_pwd(served: Any) -> None:
    client, (_state, _clock) = served
    user = await register(client)
    response = await login(client, user["username"])
    assert response.status_code == 200, response.text
    token = claims(response.json())
    assert token["amr"] == ["pwd"] and token["acr"] == "urn:notes-auth:acr:pwd"
    assert abs(token["auth_time"] - token["iat"]) <= 5


async def test_mfa_required_then_a_totp_code_passes(served: Any) -> None:
    client, (state, clock) = served
    user = await register(client)
    seed, _ = await with_totp(state, clock, user["id"])
    response = await login(client, user["username"])
    assert response.status_code == 400
    assert response.json()["error"] == "mfa_required"
    assert "access_token" not in response.text
    code = totp.code_at(seed, totp.current_step(clock.now) + 1)
    response = await login(client, user["username"], otp=code)
    assert response.status_code == 200, response.text
    token = claims(response.json())
    assert token["amr"] == ["pwd", "otp", "mfa"]
    assert token["acr"] == "urn:notes-auth:acr:mfa"
    assert isinstance(token["auth_time"], int)
    assert "refresh_token" in response.json()
    # The same code again: refused, with the password right.
    response = await login(client, user["username"], otp=code)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_a_recovery_code_passes_once(served: Any) -> None:
    client, (state, clock) = served
    user = await register(client)
    _, codes = await with_totp(state, clock, user["id"])
    response = await login(client, user["username"], otp=codes[3])
    assert response.status_code == 200, response.text
    assert claims(response.json())["amr"] == ["pwd", "otp", "mfa"]
    response = await login(client, user["username"], otp=codes[3])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_a_wrong_code_is_invalid_grant_and_a_wrong_password_still_looks_the_same(
    served: Any,
) -> None:
    client, (state, clock) = served
    user = await register(client)
    await with_totp(state, clock, user["id"])
    wrong_code = await login(client, user["username"], otp="000000")
    assert wrong_code.status_code == 400
    assert wrong_code.json()["error"] == "invalid_grant"
    # A wrong password with a code: the password's answer, the code is never looked at.
    wrong_password = await login(client, user["username"], "not the password", otp="000000")
    assert wrong_password.status_code == 400
    assert wrong_password.json()["error_description"] == "the username or password is wrong"


async def test_mfa_required_answers_stay_counted_as_failed_logins(
    factor_settings: AuthSettings,
) -> None:
    """The answer proves the password, so it mustn't be a free oracle: with a login limit of 3,
    the 4th right password without a code gets 429. A right code afterwards forgives (as a
    right password alone does for an account without a second factor)."""
    settings = factor_settings.model_copy(update={"login_failure_limit": 3})
    clock = Clock()
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        state = app.state.auth
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://a") as client:
            user = await register(client)
            seed, _ = await with_totp(state, clock, user["id"])
            statuses = [(await login(client, user["username"])).status_code for _ in range(4)]
            assert statuses == [400, 400, 400, 429]

    # Another run: two mfa_required, then a code passes, and the count is forgiven.
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50001))
        async with httpx.AsyncClient(transport=transport, base_url="http://a") as client:
            other = await register(client)
            seed, _ = await with_totp(app.state.auth, clock, other["id"])
            for _ in range(2):
                assert (await login(client, other["username"])).status_code == 400
            code = totp.code_at(seed, totp.current_step(clock.now) + 1)
            assert (await login(client, other["username"], otp=code)).status_code == 200
            for _ in range(2):
                assert (await login(client, other["username"])).status_code == 400


async def test_wrong_codes_are_throttled_with_429(factor_settings: AuthSettings) -> None:
    settings = factor_settings.model_copy(
        update={"factor_failure_limit": 2, "login_failure_limit": 100}
    )
    clock = Clock()
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://a") as client:
            user = await register(client)
            seed, _ = await with_totp(app.state.auth, clock, user["id"])
            statuses = [
                (await login(client, user["username"], otp="000000")).status_code for _ in range(3)
            ]
            assert statuses == [400, 400, 429]
            right = totp.code_at(seed, totp.current_step(clock.now) + 1)
            refused = await login(client, user["username"], otp=right)
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0


async def test_the_password_is_checked_with_the_same_work_for_an_unknown_user(
    served: Any,
) -> None:
    """The factor check comes after the password: an unknown name gets the usual answer."""
    client, _ = served
    response = await login(client, "nobody-here", PASSWORD, otp="123456")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
