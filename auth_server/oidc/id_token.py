"""The id_token (OIDC Core §2, §3.1.3.6), signed with the access tokens' key set, and the
checking of an `id_token_hint` (RP-Initiated Logout §2).

PyJWT signs and verifies, as it does the access tokens (one JOSE library for both); authlib gives
the `at_hash` half-hash (`create_half_hash`), which is exactly OIDC Core §3.1.3.6's definition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from authlib.oidc.core.util import create_half_hash
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.keys.store import KeyStore
from auth_server.sessions.authentication import Authentication

ID_TOKEN_TTL = 300  # seconds: an id_token is read once, at sign-in (and kept as a logout hint)


def at_hash(access_token: str, alg: str = "RS256") -> str:
    """OIDC Core §3.1.3.6: the left half of the access token's hash, base64url."""
    half = create_half_hash(access_token, alg)
    if half is None:  # pragma: no cover - only for an algorithm we never sign with
        raise ValueError(f"no hash for {alg}")
    return half.decode() if isinstance(half, bytes) else str(half)


class IdTokenIssuer:
    def __init__(
        self,
        keys: KeyStore,
        *,
        issuer: str,
        ttl: int = ID_TOKEN_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._ttl = ttl
        self._clock = clock

    async def issue(
        self,
        db: AsyncSession | None,
        *,
        sub: str,
        client_id: str,
        sid: str,
        authentication: Authentication | None,
        access_token: str,
        nonce: str | None = None,
    ) -> str:
        """An id_token for `client_id` (its `aud`). `nonce` only at the code exchange: a
        refreshed id_token has none (OIDC Core §12.2) and keeps the sign-in's auth_time, amr and
        acr."""
        key = await self._keys.signing_key(db)
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": sub,
            "aud": client_id,
            "exp": now + self._ttl,
            "iat": now,
            "sid": sid,
            "at_hash": at_hash(access_token, key.alg),
        }
        if authentication is not None:
            claims.update(authentication.claims())
        if nonce is not None:
            claims["nonce"] = nonce
        # OIDC Core §2: "azp" is needed only when aud has several values; ours has one.
        return jwt.encode(
            claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": "JWT"}
        )


@dataclass(frozen=True, slots=True)
class IdTokenHint:
    sub: str
    client_id: str
    sid: str | None


class InvalidHint(Exception):
    pass


async def read_id_token_hint(keys: KeyStore, issuer: str, token: str) -> IdTokenHint:
    """An id_token this server issued, possibly expired (RP-Initiated Logout §2: the OP need not
    refuse an expired hint), else InvalidHint. Its signature must verify with a published key."""
    if not token or len(token) > 8192:
        raise InvalidHint("the id_token_hint is missing or too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidHint("the id_token_hint is not a JWT") from None
    if header.get("alg") != "RS256" or header.get("typ") != "JWT":
        raise InvalidHint("the id_token_hint is not one of our id_tokens")
    key = await keys.get_key(str(header.get("kid", ""))[:128])
    if key is None:
        raise InvalidHint("the id_token_hint was signed by an unknown key")
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            issuer=issuer,
            options={"verify_exp": False, "verify_aud": False, "require": ["sub", "aud", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidHint(f"the id_token_hint is not valid: {exc}") from None
    aud = claims.get("aud")
    if isinstance(aud, list):
        aud = aud[0] if len(aud) == 1 else None
    if not isinstance(aud, str) or not isinstance(claims.get("sub"), str):
        raise InvalidHint("the id_token_hint names no single client")
    sid = claims.get("sid")
    return IdTokenHint(sub=claims["sub"], client_id=aud, sid=sid if isinstance(sid, str) else None)


__all__ = [
    "ID_TOKEN_TTL",
    "IdTokenHint",
    "IdTokenIssuer",
    "InvalidHint",
    "at_hash",
    "read_id_token_hint",
]
