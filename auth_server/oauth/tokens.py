"""Access tokens: RFC 9068 JWTs, RS256, signed with the active key's cached key object."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.keys.store import KeyStore
from auth_server.sessions.authentication import Authentication
from shared.claims import AccessTokenClaims


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str
    jti: str
    kid: str
    expires_in: int
    expires_at: int
    scope: str


class TokenIssuer:
    def __init__(
        self,
        keys: KeyStore,
        *,
        issuer: str,
        audience: str,
        ttl: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl
        self._clock = clock

    async def issue_access_token(
        self,
        db: AsyncSession | None,
        *,
        sub: str,
        client_id: str,
        scope: str,
        sid: str | None,
        authentication: Authentication | None = None,
    ) -> IssuedAccessToken:
        """Sign with the active key, checked in `db` (the request's transaction) unless it is
        None (the caller's statement checks that the key is still active)."""
        key = await self._keys.signing_key(db)
        now = int(self._clock())
        jti = secrets.token_urlsafe(16)
        # RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti; `scope` and our `sid`.
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": sub,
            "aud": self._audience,
            "exp": now + self._ttl,
            "iat": now,
            "nbf": now,
            "jti": jti,
            "client_id": client_id,
            "scope": scope,
        }
        if sid is not None:
            claims["sid"] = sid
        if authentication is not None:  # contract §8.3: how the person signed in (RFC 9470)
            claims.update(authentication.claims())
        token = jwt.encode(
            claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": "at+jwt"}
        )
        return IssuedAccessToken(
            token=token,
            jti=jti,
            kid=key.kid,
            expires_in=self._ttl,
            expires_at=now + self._ttl,
            scope=scope,
        )


def names_a_user(claims: AccessTokenClaims) -> bool:
    """Whether the token was issued for a user. A client-credentials token has no resource
    owner, and RFC 9068 §2.2 makes its `sub` the client itself (ClientCredentialsGrant), while
    a user's `sub` is the user's generated id."""
    return claims.sub != claims.client_id


def token_response(
    access: IssuedAccessToken, refresh_token: str | None = None, id_token: str | None = None
) -> dict[str, Any]:
    """RFC 6749 §5.1 (and OIDC Core §3.1.3.3's `id_token`)."""
    body: dict[str, Any] = {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "scope": access.scope,
    }
    if refresh_token:
        body["refresh_token"] = refresh_token
    if id_token is not None:
        body["id_token"] = id_token
    return body
