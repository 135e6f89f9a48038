"""Client authentication at the token, revoke, introspect and feed endpoints (RFC 6749 §2.3.1,
§5.2): issue 16, items 4 and 9."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from auth_server.settings import AuthSettings
from tests.integration.sessions.conftest import running_app

ENDPOINTS = [
    ("POST", "/token", {"grant_type": "client_credentials"}),
    ("POST", "/revoke", {"token": "x"}),
    ("POST", "/introspect", {"token": "x"}),
    ("GET", "/revocations", None),
]
# What a client may put after "Basic ": Starlette reads header bytes as Latin-1, so a byte
# above 0x7f arrives as a non-ASCII character, which base64 refuses with ValueError.
NON_ASCII = [
    b"Basic " + "clïent:sécret".encode(),
    b"Basic " + "é".encode("latin-1"),
    b"Basic " + base64.b64encode(b"web:x")[:-2] + "\u00ff".encode("latin-1") + b"=",
]


@pytest.fixture
async def feed_closed(auth_settings: AuthSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The auth server as in production: the feed is for authenticated clients only."""
    async with running_app(
        auth_settings.model_copy(update={"revocation_feed_auth": "client"})
    ) as client:
        yield client


async def test_non_ascii_basic_credentials_are_401_invalid_client(
    feed_closed: httpx.AsyncClient,
) -> None:
    """The review: `base64.b64decode(str, validate=True)` raises ValueError for non-ASCII text,
    which was not caught: a 500 at all four endpoints."""
    for method, path, form in ENDPOINTS:
        for authorization in NON_ASCII:
            response = await feed_closed.request(
                method, path, data=form, headers={"Authorization": authorization}
            )
            assert response.status_code == 401, (path, authorization, response.text)
            assert response.json()["error"] == "invalid_client"
            assert response.headers["WWW-Authenticate"].startswith("Basic")
            assert response.headers["Cache-Control"] == "no-store"


async def test_refused_client_credentials_are_401_with_a_challenge_only_after_basic(
    feed_closed: httpx.AsyncClient, confidential_client: tuple[str, str]
) -> None:
    """Issue 16 item 9: a public client that sends a `client_secret` failed client
    authentication; RFC 6749 §5.2 permits 401 for `invalid_client`, and requires the challenge
    only when the client tried HTTP Basic. So does a secret for an unknown client or a wrong
    one, in the form. A request with no credential at all stays 400."""
    client_id, _ = confidential_client
    refused_in_form = [
        {"client_id": "web", "client_secret": "a public client has none"},
        {"client_id": "made-up", "client_secret": "whatever"},
        {"client_id": client_id, "client_secret": "wrong"},
    ]
    for path, form in (
        ("/token", {"grant_type": "client_credentials"}),
        ("/revoke", {"token": "x"}),
        ("/introspect", {"token": "x"}),
    ):
        for credentials in refused_in_form:
            response = await feed_closed.post(path, data=form | credentials)
            assert response.status_code == 401, (path, credentials, response.text)
            assert response.json()["error"] == "invalid_client"
            assert "WWW-Authenticate" not in response.headers
        basic = await feed_closed.post(path, data=form, auth=("web", "a public client has none"))
        assert basic.status_code == 401 and basic.json()["error"] == "invalid_client"
        assert basic.headers["WWW-Authenticate"].startswith("Basic")
        for no_credential in ({}, {"client_id": "made-up"}, {"client_id": client_id}):
            response = await feed_closed.post(path, data=form | no_credential)
            assert response.status_code == 400, (path, no_credential, response.text)
            assert response.json()["error"] == "invalid_client"
