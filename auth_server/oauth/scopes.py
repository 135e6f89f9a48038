"""Scopes (RFC 6749 §3.3): what a client and a user may have, and what a request asks for."""

from __future__ import annotations

import re

from auth_server.oauth.errors import InvalidScope

USER_SCOPES = frozenset({"notes:read", "notes:write"})
# The auth server's own scopes for a person (contract §8.2; OIDC Core §5.4, §11).
OPENID = "openid"
IDENTITY_SCOPES = frozenset({OPENID, "profile", "email", "offline_access", "account"})
ADMIN_SCOPE = "admin"
# Held by resource servers' confidential clients, to read the revocation feed where it is not
# open (AUTH_REVOCATION_FEED_AUTH=client, the production default).
FEED_SCOPE = "revocations:read"
ALL_SCOPES = USER_SCOPES | IDENTITY_SCOPES | {ADMIN_SCOPE, FEED_SCOPE}
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


def parse_scope(raw: str | None) -> frozenset[str] | None:
    """The requested scopes, or None when the parameter is absent or empty."""
    if raw is None or not raw.strip():
        return None
    tokens = raw.split(" ")
    if any(not _SCOPE_TOKEN.match(token) for token in tokens if token) or "" in tokens[1:-1]:
        raise InvalidScope("the scope parameter is malformed")
    return frozenset(t for t in tokens if t)


def grant_scope(requested: frozenset[str] | None, allowed: frozenset[str]) -> str:
    """Default: everything allowed but `admin`, which is granted only when asked for by name
    (contract §7). A narrower request is honoured; anything else is refused."""
    if requested is None:
        granted = allowed - {ADMIN_SCOPE}
    else:
        extra = requested - allowed
        if extra:
            raise InvalidScope("the requested scope is unknown or not allowed")
        granted = requested
    if not granted:
        raise InvalidScope("no scope can be granted")
    return " ".join(sorted(granted))


def user_scopes(is_admin: bool) -> frozenset[str]:
    mine = USER_SCOPES | IDENTITY_SCOPES
    return mine | {ADMIN_SCOPE} if is_admin else mine
