"""notes-auth shared library: verify our access tokens and protect an API with them."""

from shared.claims import AccessTokenClaims
from shared.denylist import Denylist
from shared.errors import TokenError
from shared.jwks import RemoteKeySet
from shared.keys import KeySource, StaticKeySet, VerificationKey
from shared.problem import ProblemError
from shared.refresh import AuthServerUnavailable, RefreshRejected, TokenPair, TransparentRefresher
from shared.revocation_feed import RevocationFeedClient
from shared.security import BearerAuth, BearerChallenge
from shared.token_cache import VerifiedTokenCache
from shared.verification import TokenVerifier

__all__ = [
    "AccessTokenClaims",
    "AuthServerUnavailable",
    "BearerAuth",
    "BearerChallenge",
    "Denylist",
    "KeySource",
    "ProblemError",
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
