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
