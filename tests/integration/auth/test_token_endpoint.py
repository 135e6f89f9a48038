"""POST /token: RFC 6749 §5.2 errors, the attack surface, scopes, client credentials, and the
RFC 9068 shape of what it issues."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import jwt
import pytest

from tests.integration.auth.conftest import PASSWORD, login, register


def _assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == error
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


@pytest.fixture
async def alice(auth_client: httpx.AsyncClient) -> dict[str, Any]:
    return await register(auth_client, "alice")


async def test_password_grant_issues_an_rfc9068_access_token(
    auth_client: httpx.AsyncClient, alice: dict[str, Any], auth_settings: Any
) -> None:
    response = await login(auth_client, "alice")
    assert response.status_code == 200
    assert (
        response.headers["Cache-Control"] == "no-store" and response.headers["Pragma"] == "no-cache"
    )
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == auth_settings.access_token_ttl
    assert len(body["refresh_token"]) >= 43  # 256 bits, base64url
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256" and header["typ"] == "at+jwt" and header["kid"]
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "sid"} <= claims.keys()
    assert claims["iss"] == auth_settings.issuer and claims["aud"] == "notes-api"
    assert claims["sub"] == alice["id"] and claims["sub"] != "alice"
    assert claims["client_id"] == "web" and claims["scope"] == "notes:read notes:write"
    assert claims["exp"] - claims["iat"] == auth_settings.access_token_ttl


async def test_wrong_password_and_unknown_user_look_the_same(
    auth_client: httpx.AsyncClient, alice: Any
) -> None:
    wrong = await login(auth_client, "alice", password="wrong password 1234")
    unknown = await login(auth_client, "nobody-at-all", password="wrong password 1234")
    _assert_oauth_error(wrong, 400, "invalid_grant")
    assert wrong.json() == unknown.json()
    assert wrong.status_code == unknown.status_code


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"client_id": "web", "username": "alice", "password": PASSWORD}, "invalid_request"),
        # Contract §8.1: `web` keeps the password grant and has no authorization_code.
        ({"grant_type": "authorization_code", "client_id": "web"}, "unauthorized_client"),
        ({"grant_type": "implicit", "client_id": "web"}, "unsupported_grant_type"),
        ({"grant_type": "PASSWORD", "client_id": "web"}, "unsupported_grant_type"),
        ({"grant_type": "password", "client_id": "web", "username": "alice"}, "invalid_request"),
        ({"grant_type": "password", "client_id": "web", "password": PASSWORD}, "invalid_request"),
        ({"grant_type": "password", "username": "alice", "password": PASSWORD}, "invalid_client"),
        (
            {
                "grant_type": "password",
                "client_id": "nope",
                "username": "alice",
                "password": PASSWORD,
            },
            "invalid_client",
        ),
        ({"grant_type": "client_credentials", "client_id": "web"}, "unauthorized_client"),
        (
            {
                "grant_type": "password",
                "client_id": "web",
                "username": "alice",
                "password": PASSWORD,
                "scope": "admin",
            },
            "invalid_scope",
        ),
        (
            {
                "grant_type": "password",
                "client_id": "web",
                "username": "alice",
                "password": PASSWORD,
                "scope": "bogus",
            },
            "invalid_scope",
        ),
        (
            {
                "grant_type": "password",
                "client_id": "web",
                "username": "alice",
                "password": PASSWORD,
                "scope": 'notes:"read',
            },
            "invalid_scope",
        ),
    ],
)
async def test_bad_requests_get_rfc6749_errors(
    auth_client: httpx.AsyncClient, alice: Any, data: dict[str, str], error: str
) -> None:
    _assert_oauth_error(await auth_client.post("/token", data=data), 400, error)


async def test_a_json_body_is_invalid_request_not_422(
    auth_client: httpx.AsyncClient, alice: Any
) -> None:
    response = await auth_client.post(
        "/token",
        json={
            "grant_type": "password",
            "client_id": "web",
            "username": "alice",
            "password": PASSWORD,
        },
    )
    _assert_oauth_error(response, 400, "invalid_request")


async def test_duplicate_parameters_are_refused(auth_client: httpx.AsyncClient, alice: Any) -> None:
    body = f"grant_type=password&client_id=web&username=alice&username=bob&password={PASSWORD}"
    response = await auth_client.post(
        "/token", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    _assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "raw",
    [
        "grant_type=password&client_id=web&username=" + "a" * 5000 + "&password=x",
        "grant_type=password&client_id=web&username=ali%00ce&password=x",
        "grant_type=password%00&client_id=web",
        "grant_type=password&client_id=web&username=%FF%FE&password=x",
        "&".join(f"p{i}=v" for i in range(200)),
    ],
)
async def test_oversized_nul_and_garbled_fields_are_invalid_request(
    auth_client: httpx.AsyncClient, raw: str
) -> None:
    response = await auth_client.post(
        "/token", content=raw, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    _assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "username", ["' OR '1'='1", "alice'; DROP TABLE users; --", '" OR 1=1 --', "%' --"]
)
async def test_sql_metacharacters_are_just_data(
    auth_client: httpx.AsyncClient, alice: Any, username: str
) -> None:
    _assert_oauth_error(await login(auth_client, username), 400, "invalid_grant")
    assert (await login(auth_client, "alice")).status_code == 200  # the table is still there


async def test_a_narrower_scope_is_honoured(auth_client: httpx.AsyncClient, alice: Any) -> None:
    response = await login(auth_client, "alice", scope="notes:read")
    assert response.status_code == 200 and response.json()["scope"] == "notes:read"
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["scope"] == "notes:read"


async def test_client_credentials_with_basic_and_with_post(
    auth_client: httpx.AsyncClient, confidential_client: tuple[str, str]
) -> None:
    client_id, secret = confidential_client
    basic = await auth_client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    post = await auth_client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    for response in (basic, post):
        assert response.status_code == 200, response.text
        body = response.json()
        assert "refresh_token" not in body
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["sub"] == client_id and claims["client_id"] == client_id
        assert "sid" not in claims and claims["scope"] == "notes:read"


async def test_basic_auth_failures_are_401_with_a_basic_challenge(
    auth_client: httpx.AsyncClient, confidential_client: tuple[str, str]
) -> None:
    client_id, _ = confidential_client
    cases = [
        {"auth": (client_id, "wrong-secret")},
        {"auth": ("unknown-client", "whatever")},
        {"headers": {"Authorization": "Basic !!!not-base64!!!"}},
        {"headers": {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}},
    ]
    for case in cases:
        response = await auth_client.post(
            "/token", data={"grant_type": "client_credentials"}, **case
        )
        _assert_oauth_error(response, 401, "invalid_client")
        assert response.headers["WWW-Authenticate"].startswith("Basic")


async def test_two_client_authentication_methods_at_once_are_refused(
    auth_client: httpx.AsyncClient, confidential_client: tuple[str, str]
) -> None:
    client_id, secret = confidential_client
    response = await auth_client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_secret": secret},
        auth=(client_id, secret),
    )
    _assert_oauth_error(response, 400, "invalid_request")


async def test_a_confidential_client_without_its_secret_is_refused(
    auth_client: httpx.AsyncClient, confidential_client: tuple[str, str]
) -> None:
    response = await auth_client.post(
        "/token", data={"grant_type": "client_credentials", "client_id": "backend"}
    )
    _assert_oauth_error(response, 400, "invalid_client")


async def test_password_grant_is_not_allowed_for_a_client_without_it(
    auth_client: httpx.AsyncClient, alice: Any, confidential_client: tuple[str, str]
) -> None:
    response = await auth_client.post(
        "/token",
        data={"grant_type": "password", "username": "alice", "password": PASSWORD},
        auth=confidential_client,
    )
    _assert_oauth_error(response, 400, "unauthorized_client")


async def test_get_on_the_token_endpoint_is_405(auth_client: httpx.AsyncClient) -> None:
    response = await auth_client.get("/token")
    assert response.status_code == 405
