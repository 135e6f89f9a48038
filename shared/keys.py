"""What a verifier needs from a key source: a public key by `kid`.

`RemoteKeySet` (jwks.py) is the usual source; `StaticKeySet` serves pinned keys (tests, or a
third party that distributes keys out of band); the auth server serves its own key store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

PublicKey = RSAPublicKey | EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A parsed public key, ready to verify signatures (parse once, never per request)."""

    kid: str
    key: PublicKey
    alg: str | None = None  # the JWK's `alg`, if it named one
    kty: str = "RSA"


@runtime_checkable
class KeySource(Protocol):
    async def get_key(self, kid: str) -> VerificationKey | None:
        """The key named `kid`, or None when the source does not know it."""
        ...


def key_from_jwk(jwk: Mapping[str, Any]) -> VerificationKey:
    """Parse one public JWK (RFC 7517). Private members are ignored, never used."""
    import jwt

    public_only = {
        k: v for k, v in jwk.items() if k not in {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
    }
    parsed = jwt.PyJWK.from_dict(dict(public_only))
    key = parsed.key
    if not isinstance(key, RSAPublicKey | EllipticCurvePublicKey):
        raise ValueError("not a public RSA or EC key")
    return VerificationKey(
        kid=str(jwk.get("kid", "")), key=key, alg=jwk.get("alg"), kty=str(jwk.get("kty", ""))
    )


class StaticKeySet:
    """A fixed set of keys."""

    def __init__(self, keys: Iterable[VerificationKey]) -> None:
        self._keys = {k.kid: k for k in keys}

    async def get_key(self, kid: str) -> VerificationKey | None:
        return self._keys.get(kid)


__all__ = ["KeySource", "PublicKey", "StaticKeySet", "VerificationKey", "key_from_jwk"]
