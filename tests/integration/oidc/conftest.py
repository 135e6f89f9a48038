"""Helpers for the identity-provider tests: clients, PKCE, a person signing in at the hosted
pages (by their forms, as a browser with JavaScript off would), and the code exchange."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from auth_server.oauth.clients import create_client
from shared.service.db import transaction
from tests.integration.auth.conftest import PASSWORD, register

APP = "https://app.example/callback"
APP_LOGOUT = "https://app.example/"
ISSUER = "http://127.0.0.1:8000"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def form_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a page's first form."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def add_client(
    auth_app: Any,
    client_id: str,
    *,
    redirect_uris: list[str] | None = None,
    post_logout: list[str] | None = None,
    first_party: bool = False,
    native: bool = False,
    confidential: bool = False,
    scopes: list[str] | None = None,
) -> str | None:
    async with transaction(auth_app.state.auth.session_maker) as db:
        _, secret = await create_client(
            db,
            client_id=client_id,
            confidential=confidential,
            grant_types=["authorization_code", "refresh_token"],
            scopes=scopes or [],
            redirect_uris=redirect_uris or [APP],
            post_logout_redirect_uris=post_logout if post_logout is not None else [APP_LOGOUT],
            first_party=first_party,
            native=native,
        )
    return secret


@dataclass
class Person:
    """A browser (a cookie jar) and the account it signs in with."""

    client: httpx.AsyncClient
    username: str
    password: str = PASSWORD

    async def sign_in(self, flow_location: str | None = None) -> httpx.Response:
        """Fill in the sign-in page (of a flow, or the auth server's own) and send it."""
        page = await self.client.get(flow_location or "/login")
        assert page.status_code == 200, page.text
        fields = form_fields(page.text)
        return await self.client.post(
            "/login", data=fields | {"username": self.username, "password": self.password}
        )


@pytest.fixture
async def person(auth_client: httpx.AsyncClient) -> Person:
    user = await register(auth_client)
    return Person(auth_client, user["username"])


def authorize_params(client_id: str, challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": APP,
        "scope": "openid profile email notes:read",
        "state": "xyz-state",
        "nonce": "n-0S6_WzA2Mj",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    } | extra


async def get_code(person: Person, client_id: str, challenge: str, **extra: str) -> dict[str, str]:
    """Through /authorize (signing in when asked) to the redirect back: its query."""
    response = await person.client.get(
        "/authorize", params=authorize_params(client_id, challenge, **extra)
    )
    if response.headers.get("location", "").startswith("/login"):
        response = await person.sign_in(response.headers["location"])
    location = response.headers.get("location", "")
    assert location.startswith(APP), (response.status_code, location, response.text[:500])
    return query(location)


async def exchange(
    client: httpx.AsyncClient, client_id: str, code: str, verifier: str | None, **extra: str
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": APP,
        "client_id": client_id,
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    return await client.post("/token", data=data | extra)


__all__ = [
    "APP",
    "APP_LOGOUT",
    "ISSUER",
    "PASSWORD",
    "Person",
    "add_client",
    "authorize_params",
    "exchange",
    "form_fields",
    "get_code",
    "pkce",
    "query",
]
