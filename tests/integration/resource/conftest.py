"""A resource server on a real database, with pinned keys that the tests sign tokens with."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from resource_server.main import create_app
from resource_server.settings import ResourceSettings
from shared.keys import StaticKeySet, VerificationKey

KID = "test-key"
Issue = Callable[..., str]


@pytest.fixture(scope="session")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def issue(signing_key: rsa.RSAPrivateKey, resource_settings: ResourceSettings) -> Issue:
    def make(sub: str = "alice", scope: str = "notes:read notes:write", **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": resource_settings.issuer,
            "sub": sub,
            "aud": resource_settings.audience,
            "exp": now + 300,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "client_id": "web",
            "scope": scope,
            "sid": f"sid-{sub}",
        } | claims
        return jwt.encode(
            payload, signing_key, algorithm="RS256", headers={"kid": KID, "typ": "at+jwt"}
        )

    return make


@pytest.fixture
async def resource_app(
    resource_settings: ResourceSettings, signing_key: rsa.RSAPrivateKey
) -> AsyncIterator[Any]:
    keys = StaticKeySet([VerificationKey(KID, signing_key.public_key(), "RS256")])
    app = create_app(resource_settings, key_source=keys, revocation_feed=False)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(resource_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=resource_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8001") as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
