"""The UserInfo claims (OIDC Core §5.3, §5.4), by scope (contract §8.3)."""

from __future__ import annotations

from typing import Any

from auth_server.persistence.models import User


def userinfo_claims(user: User, scopes: frozenset[str] | set[str]) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": user.id}
    if "profile" in scopes:
        claims["preferred_username"] = user.username
    if "email" in scopes:
        claims["email"] = user.email
        # No address is verified yet (mail comes with issue 23): OIDC Core §5.1 says so.
        claims["email_verified"] = False
    return claims


__all__ = ["userinfo_claims"]
