"""notes-auth's verification library: verify our access tokens, and protect an API with them.

    from shared import RemoteKeySet, TokenVerifier

The names below are imported lazily, so `import shared` costs nothing and pulls in no web
framework: the core needs PyJWT (on `cryptography`), httpx, and redis only when a Redis URL is
configured. The FastAPI glue is `shared.fastapi`; `shared.service` holds what only the two
notes-auth services share (database, migrations, settings, problem+json, metrics, command line)
and is not part of the library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module that defines it
_EXPORTS = {
    "AccessTokenClaims": "shared.claims",
    "AuthServerUnavailable": "shared.refresh",
    "Denylist": "shared.denylist",
    "KeySource": "shared.keys",
    "Metrics": "shared.metrics",
    "RefreshRejected": "shared.refresh",
    "RemoteKeySet": "shared.jwks",
    "RevocationFeedClient": "shared.revocation_feed",
    "StaticKeySet": "shared.keys",
    "TokenError": "shared.errors",
    "TokenPair": "shared.refresh",
    "TokenVerifier": "shared.verification",
    "TransparentRefresher": "shared.refresh",
    "VerificationKey": "shared.keys",
    "VerifiedTokenCache": "shared.token_cache",
}

__all__ = [
    "AccessTokenClaims",
    "AuthServerUnavailable",
    "Denylist",
    "KeySource",
    "Metrics",
    "RefreshRejected",
    "RemoteKeySet",
    "RevocationFeedClient",
    "StaticKeySet",
    "TokenError",
    "TokenPair",
    "TokenVerifier",
    "TransparentRefresher",
    "VerificationKey",
    "VerifiedTokenCache",
]

if TYPE_CHECKING:  # for type checkers and IDEs only; at run time the names load on first use
    from shared.claims import AccessTokenClaims
    from shared.denylist import Denylist
    from shared.errors import TokenError
    from shared.jwks import RemoteKeySet
    from shared.keys import KeySource, StaticKeySet, VerificationKey
    from shared.metrics import Metrics
    from shared.refresh import (
        AuthServerUnavailable,
        RefreshRejected,
        TokenPair,
        TransparentRefresher,
    )
    from shared.revocation_feed import RevocationFeedClient
    from shared.token_cache import VerifiedTokenCache
    from shared.verification import TokenVerifier


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shared' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
