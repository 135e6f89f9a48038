"""Reference apps for scenario 1, started by bench/refserve.py with the same uvicorn settings
as `resource-server serve`. Each serves GET /me with the same response shape as ours.

- bare: one route, no authentication at all (the ceiling).
- naive: the FastAPI-tutorial way, PyJWT + PyJWKClient, a full decode on every request (the
  docs' "Protect your API" snippet as a dependency).
- introspect: asks the auth server (POST /introspect, RFC 7662, HTTP Basic with a confidential
  client) on every request.

Settings come from the environment: BENCH_ISSUER, BENCH_AUDIENCE, BENCH_CLIENT_ID and
BENCH_CLIENT_SECRET.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

AT_JWT = {"at+jwt", "application/at+jwt"}
REQUIRED = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]


def _me(claims: dict[str, Any]) -> dict[str, Any]:
    return {
        "sub": claims.get("sub"),
        "client_id": claims.get("client_id"),
        "scope": claims.get("scope"),
        "exp": claims.get("exp"),
        "sid": claims.get("sid"),
    }


def _unauthorized() -> HTTPException:
    return HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})


def bare_app() -> FastAPI:
    app = FastAPI()
    body = {
        "sub": "0b6b8b8e-5f0e-4a57-9a0b-000000000000",
        "client_id": "web",
        "scope": "notes:read notes:write",
        "exp": 2000000000,
        "sid": "bench-session-id-000000",
    }

    @app.get("/me")
    async def me() -> dict[str, Any]:
        return body

    return app


def naive_app() -> FastAPI:
    issuer = os.environ["BENCH_ISSUER"]
    audience = os.environ.get("BENCH_AUDIENCE", "notes-api")
    jwks = jwt.PyJWKClient(f"{issuer}/.well-known/jwks.json")
    bearer = HTTPBearer()

    async def claims(creds: HTTPAuthorizationCredentials = Depends(bearer)) -> dict[str, Any]:
        token = creds.credentials
        try:
            key = jwks.get_signing_key_from_jwt(token)
            decoded: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                issuer=issuer,
                audience=audience,
                options={"require": REQUIRED},
            )
            if str(jwt.get_unverified_header(token).get("typ", "")).lower() not in AT_JWT:
                raise _unauthorized()
        except jwt.PyJWTError:
            raise _unauthorized() from None
        return decoded

    app = FastAPI()

    @app.get("/me")
    async def me(c: dict[str, Any] = Depends(claims)) -> dict[str, Any]:
        return _me(c)

    return app


def introspect_app() -> FastAPI:
    issuer = os.environ["BENCH_ISSUER"]
    auth = (os.environ["BENCH_CLIENT_ID"], os.environ["BENCH_CLIENT_SECRET"])
    bearer = HTTPBearer()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as http:
            app.state.http = http
            yield

    async def claims(
        request: Request, creds: HTTPAuthorizationCredentials = Depends(bearer)
    ) -> dict[str, Any]:
        http: httpx.AsyncClient = request.app.state.http
        response = await http.post(
            f"{issuer}/introspect",
            data={"token": creds.credentials, "token_type_hint": "access_token"},
            auth=auth,
        )
        if response.status_code != 200:
            raise HTTPException(503, "introspection failed")
        body: dict[str, Any] = response.json()
        if not body.get("active"):
            raise _unauthorized()
        return body

    app = FastAPI(lifespan=lifespan)

    @app.get("/me")
    async def me(c: dict[str, Any] = Depends(claims)) -> dict[str, Any]:
        return _me(c)

    return app
