"""Keys and token factories for the verification library's unit tests (no I/O)."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.keys import StaticKeySet, VerificationKey
from shared.verification import TokenVerifier

ISSUER = "https://auth.example.com"
AUDIENCE = "notes-api"
KID = "key-1"

TokenFactory = Callable[..., str]


class RecordingMetrics:
    """A `shared.metrics.Metrics` hook that counts what it is told."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, ...]] = collections.Counter()

    def token_refused(self, reason: str) -> None:
        self.counts["refused", reason] += 1

    def jwks_fetched(self, outcome: str) -> None:
        self.counts["jwks", outcome] += 1

    def jwks_stale_served(self) -> None:
        self.counts["stale",] += 1

    def revocations_applied(self, source: str, count: int) -> None:
        self.counts["applied", source] += count

    def revocation_feed_failed(self) -> None:
        self.counts["feed_failed",] += 1


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "exp": now + 300,
        "iat": now,
        "jti": f"jti-{time.perf_counter_ns()}",
        "client_id": "web",
        "scope": "notes:read notes:write",
        "sid": "session-1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def make_token(rsa_key: rsa.RSAPrivateKey) -> TokenFactory:
    def make(
        key: Any = None,
        alg: str = "RS256",
        headers: dict[str, Any] | None = None,
        **claim_overrides: Any,
    ) -> str:
        header = {"kid": KID, "typ": "at+jwt"} | (headers or {})
        return jwt.encode(claims(**claim_overrides), key or rsa_key, algorithm=alg, headers=header)

    return make


@pytest.fixture
def key_set(rsa_key: rsa.RSAPrivateKey) -> StaticKeySet:
    return StaticKeySet([VerificationKey(KID, rsa_key.public_key(), "RS256")])


@pytest.fixture
def verifier(key_set: StaticKeySet) -> TokenVerifier:
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, key_source=key_set, leeway=30)
