"""The FastAPI glue: RFC 6750 challenges, scopes, transparent refresh headers, 503 on outage."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Request, Security

from shared.claims import AccessTokenClaims
from shared.fastapi import BearerAuth, install_bearer_handlers, set_token_url
from shared.refresh import AuthServerUnavailable, RefreshRejected, TokenPair
from shared.service.problem import NotFound, install_problem_handlers
from shared.verification import TokenVerifier
from tests.unit.shared.conftest import TokenFactory


class FakeRefresher:
    """Stands in for the auth server's token endpoint (the HTTP client is tested with respx)."""

    retry_after = 5

    def __init__(self, make_token: TokenFactory, outcome: str = "ok") -> None:
        self.make_token = make_token
        self.outcome = outcome
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def refresh(self, refresh_token: str, client_id: str, **caller: Any) -> TokenPair:
        self.calls.append((refresh_token, client_id, caller))
        if self.outcome == "rejected":
            raise RefreshRejected("400")
        if self.outcome == "down":
            raise AuthServerUnavailable("down")
        return TokenPair(
            access_token=self.make_token(jti="fresh"),
            refresh_token="rotated",
            expires_in=900,
            scope="notes:read",
        )


def build_app(verifier: TokenVerifier, refresher: Any = None) -> FastAPI:
    bearer = BearerAuth(
        verifier, realm="test-api", refresher=refresher, scopes={"notes:read": "read"}
    )
    app = FastAPI()
    install_problem_handlers(app)
    install_bearer_handlers(app)

    @app.get("/read")
    async def read(
        claims: Annotated[AccessTokenClaims, Security(bearer, scopes=["notes:read"])],
    ) -> dict[str, str]:
        return {"sub": claims.sub, "jti": claims.jti}

    @app.get("/admin")
    async def admin(
        claims: Annotated[AccessTokenClaims, Security(bearer, scopes=["admin"])],
    ) -> dict[str, str]:
        return {"sub": claims.sub}

    @app.get("/boom")
    async def boom(claims: Annotated[AccessTokenClaims, Security(bearer)]) -> dict[str, str]:
        raise NotFound("the route failed after the refresh")

    # The same routes, checked by `authenticate` in the route rather than by a dependency.
    @app.get("/direct/read", openapi_extra=bearer.security(["notes:read"]))
    async def direct_read(request: Request) -> dict[str, str]:
        claims = await bearer.authenticate(request, ["notes:read"])
        return {"sub": claims.sub, "jti": claims.jti}

    @app.get("/direct/admin", openapi_extra=bearer.security(["admin"]))
    async def direct_admin(request: Request) -> dict[str, str]:
        claims = await bearer.authenticate(request, ["admin"])
        return {"sub": claims.sub}

    set_token_url(app, "https://auth.example.com/token")
    return app


@pytest.fixture
async def client(
    verifier: TokenVerifier, make_token: TokenFactory
) -> AsyncIterator[httpx.AsyncClient]:
    refresher = FakeRefresher(make_token)
    app = build_app(verifier, refresher)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        c.refresher = refresher  # type: ignore[attr-defined]
        yield c


async def test_no_credentials_get_a_challenge_without_an_error_code(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/read")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="test-api"'
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "header",
    [
        b"Bearer",
        b"Bearer ",
        b"Basic abc",
        b"Bearer a b",
        b"Token abc",
        b"bearer not-a-jwt",
        "Bearer \u00e9\u00e9".encode(),
    ],
)
async def test_malformed_or_bad_credentials_are_401_invalid_token(
    client: httpx.AsyncClient, header: bytes
) -> None:
    response = await client.get("/read", headers={"Authorization": header})
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(
        'Bearer realm="test-api", error="invalid_token", error_description="'
    )


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "BeArEr"])
async def test_the_scheme_is_matched_without_regard_to_case(
    client: httpx.AsyncClient, make_token: TokenFactory, scheme: str
) -> None:
    assert (
        await client.get("/read", headers={"Authorization": f"{scheme} {make_token()}"})
    ).status_code == 200


async def test_a_missing_scope_is_403_insufficient_scope(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    response = await client.get("/admin", headers={"Authorization": f"Bearer {make_token()}"})
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="test-api", error="insufficient_scope", '
        'error_description="the access token lacks a required scope", scope="admin"'
    )


async def test_an_expired_token_with_a_refresh_token_is_refreshed_transparently(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    expired = make_token(exp=1000, iat=900)
    plain = await client.get("/read", headers={"Authorization": f"Bearer {expired}"})
    assert plain.status_code == 401 and "expired" in plain.headers["WWW-Authenticate"]
    response = await client.get(
        "/read",
        headers={
            "Authorization": f"Bearer {expired}",
            "Refresh-Token": "rt-1",
            "User-Agent": "Browser/1.0",
        },
    )
    assert response.status_code == 200 and response.json()["jti"] == "fresh"
    assert response.headers["New-Refresh-Token"] == "rotated"
    assert response.headers["New-Access-Token-Expires-In"] == "900"
    assert response.headers["New-Access-Token"].count(".") == 2
    assert response.headers["Cache-Control"] == "no-store"
    # The relay names the expired token's session and passes on who the caller is.
    assert client.refresher.calls == [  # type: ignore[attr-defined]
        (
            "rt-1",
            "web",
            {"session_id": "session-1", "client_ip": "127.0.0.1", "user_agent": "Browser/1.0"},
        )
    ]


async def test_the_new_pair_is_delivered_even_when_the_route_fails(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    expired = make_token(exp=1000, iat=900)
    response = await client.get(
        "/boom", headers={"Authorization": f"Bearer {expired}", "Refresh-Token": "rt-1"}
    )
    assert response.status_code == 404
    assert response.headers["New-Refresh-Token"] == "rotated"


async def read_with_refresh(
    verifier: TokenVerifier, refresher: Any, access_token: str, refresh_token: str
) -> httpx.Response:
    """GET /read on an app with `refresher`, with an access token and a refresh token."""
    app = build_app(verifier, refresher)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        return await client.get(
            "/read",
            headers={"Authorization": f"Bearer {access_token}", "Refresh-Token": refresh_token},
        )


async def test_a_refused_refresh_gets_the_plain_challenge(
    verifier: TokenVerifier, make_token: TokenFactory
) -> None:
    refresher = FakeRefresher(make_token, "rejected")
    response = await read_with_refresh(verifier, refresher, make_token(exp=1000, iat=900), "bad")
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert "New-Access-Token" not in response.headers


async def test_an_unreachable_auth_server_is_503_with_retry_after(
    verifier: TokenVerifier, make_token: TokenFactory
) -> None:
    refresher = FakeRefresher(make_token, "down")
    response = await read_with_refresh(verifier, refresher, make_token(exp=1000, iat=900), "rt")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_without_a_refresher_an_expired_token_is_just_401(
    verifier: TokenVerifier, make_token: TokenFactory
) -> None:
    response = await read_with_refresh(verifier, None, make_token(exp=1000, iat=900), "rt")
    assert response.status_code == 401


async def test_the_openapi_document_declares_the_password_flow(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["OAuth2"]
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "https://auth.example.com/token"
    assert schema["paths"]["/read"]["get"]["security"] == [{"OAuth2": ["notes:read"]}]


async def test_every_refused_refresh_gets_the_same_words(
    verifier: TokenVerifier, make_token: TokenFactory
) -> None:
    """Nothing in the answer tells an attacker that a refresh token is good (issue 8)."""

    class OtherSession(FakeRefresher):
        async def refresh(self, refresh_token: str, client_id: str, **caller: Any) -> TokenPair:
            await super().refresh(refresh_token, client_id, **caller)
            return TokenPair(make_token(sid="another-session"), "x", 900, "notes:read")

    challenges = []
    for refresher in (FakeRefresher(make_token, "rejected"), OtherSession(make_token)):
        expired = make_token(exp=1000, iat=900)
        response = await read_with_refresh(verifier, refresher, expired, "rt")
        assert response.status_code == 401 and "New-Access-Token" not in response.headers
        challenges.append(response.headers["WWW-Authenticate"])
    assert challenges[0] == challenges[1]


async def test_a_token_without_a_session_is_never_refreshed(
    verifier: TokenVerifier, make_token: TokenFactory
) -> None:
    refresher = FakeRefresher(make_token)
    no_session = make_token(exp=1000, iat=900, sid=None)
    response = await read_with_refresh(verifier, refresher, no_session, "rt")
    assert response.status_code == 401 and refresher.calls == []


@pytest.mark.parametrize(
    ("peer", "trusted", "expected"),
    [("10.1.2.3", "10.0.0.0/8", "198.51.100.7"), ("10.1.2.3", "", "10.1.2.3")],
)
async def test_the_callers_address_is_passed_on_only_from_trusted_proxies(
    verifier: TokenVerifier, make_token: TokenFactory, peer: str, trusted: str, expected: str
) -> None:
    from shared.forwarding import parse_networks

    refresher = FakeRefresher(make_token)
    bearer = BearerAuth(verifier, refresher=refresher, trusted_proxies=parse_networks([trusted]))
    app = FastAPI()
    install_bearer_handlers(app)

    @app.get("/read")
    async def read(claims: Annotated[AccessTokenClaims, Security(bearer)]) -> dict[str, str]:
        return {"sub": claims.sub}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(peer, 4000)), base_url="http://test"
    ) as client:
        response = await client.get(
            "/read",
            headers={
                "Authorization": f"Bearer {make_token(exp=1000, iat=900)}",
                "Refresh-Token": "rt",
                "X-Forwarded-For": "198.51.100.7",
            },
        )
    assert response.status_code == 200
    assert refresher.calls[0][2]["client_ip"] == expected


@pytest.mark.parametrize(
    ("route", "headers"),
    [
        ("read", {}),
        ("read", {"Authorization": "Basic dXNlcjpwYXNz"}),
        ("read", {"Authorization": "Bearer not-a-jwt"}),
        ("read", {"Authorization": "Bearer TOKEN"}),
        ("read", {"Authorization": "bearer TOKEN"}),
        ("admin", {"Authorization": "Bearer TOKEN"}),
        ("read", {"Authorization": "Bearer EXPIRED"}),
        ("read", {"Authorization": "Bearer EXPIRED", "Refresh-Token": "rt-1"}),
    ],
)
async def test_authenticate_in_the_route_answers_as_the_dependency_does(
    verifier: TokenVerifier, make_token: TokenFactory, route: str, headers: dict[str, str]
) -> None:
    """`bearer.authenticate(request, scopes)` (the hot-path form) and `Security(bearer,
    scopes=...)`: the same status, challenge, body and refresh headers for every case."""
    token, expired = make_token(), make_token(exp=1000, iat=900)
    sent = {k: v.replace("EXPIRED", expired).replace("TOKEN", token) for k, v in headers.items()}
    answers = []
    for path in (f"/{route}", f"/direct/{route}"):
        app = build_app(verifier, FakeRefresher(make_token))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as c:
            response = await c.get(path, headers=sent)
        body = response.json()
        if isinstance(body, dict) and "instance" in body:
            body["instance"] = body["instance"].replace("/direct", "")
        answers.append(
            (
                response.status_code,
                response.headers.get("WWW-Authenticate"),
                response.headers.get("New-Refresh-Token"),
                body,
            )
        )
    assert answers[0] == answers[1]
    assert answers[0][0] in (200, 401, 403)


async def test_a_route_that_authenticates_itself_is_documented_like_a_security_one(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert paths["/direct/read"]["get"]["security"] == paths["/read"]["get"]["security"]
    assert paths["/direct/admin"]["get"]["security"] == [{"OAuth2": ["admin"]}]
