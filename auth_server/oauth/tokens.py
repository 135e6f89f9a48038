"""Access tokens: RFC 9068 JWTs, RS256, signed with the active key's cached key object."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from auth_server.keys.store import KeyStore
from auth_server.settings import AuthSettings


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str
    jti: str
    expires_in: int
    expires_at: int
    scope: str


class TokenIssuer:
    def __init__(self, settings: AuthSettings, keys: KeyStore) -> None:
        self._settings = settings
        self._keys = keys

    async def issue_access_token(
        self, *, sub: str, client_id: str, scope: str, sid: str | None
    ) -> IssuedAccessToken:
        key = await self._keys.signing_key()
        now = int(time.time())
        ttl = self._settings.access_token_ttl
        jti = secrets.token_urlsafe(16)
        claims: dict[str, Any] = {
            "iss": self._settings.issuer_base,
            "sub": sub,
            "aud": self._settings.audience,
            "exp": now + ttl,
            "iat": now,
            "nbf": now,
            "jti": jti,
            "client_id": client_id,
            "scope": scope,
        }
        if sid is not None:
            claims["sid"] = sid
        token = jwt.encode(
            claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": "at+jwt"}
        )
        return IssuedAccessToken(
            token=token, jti=jti, expires_in=ttl, expires_at=now + ttl, scope=scope
        )


def token_response(access: IssuedAccessToken, refresh_token: str | None = None) -> dict[str, Any]:
    """RFC 6749 §5.1."""
    body: dict[str, Any] = {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "scope": access.scope,
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    return body
