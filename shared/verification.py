"""TokenVerifier: the only place that decides whether an access token is good.

RFC 9068 (JWT access tokens) and RFC 8725 (JWT best practices): the algorithm comes from our
allowlist and must fit the key; the key comes only from our key source by `kid` — never from
`jku`, `x5u`, `x5c` or an embedded `jwk`; `crit` is refused; `typ` must be `at+jwt`.
Signatures are checked by PyJWT on `cryptography` with already-parsed key objects.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from shared.claims import AccessTokenClaims, ClaimsError
from shared.denylist import Denylist
from shared.errors import KeySetStale, TokenError
from shared.keys import KeySource, VerificationKey
from shared.metrics import NO_METRICS, Metrics
from shared.token_cache import VerifiedTokenCache

REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")
ACCEPTED_TYP = frozenset({"at+jwt", "application/at+jwt"})  # RFC 9068 §4, case-insensitive
FORBIDDEN_HEADERS = ("jku", "x5u", "x5c", "jwk")  # RFC 8725 §3.10: never let the token pick a key
MAX_TOKEN_LENGTH = 16 * 1024
MAX_KID_LENGTH = 256
KEY_TYPES: dict[str, type] = {
    "RS256": RSAPublicKey,
    "RS384": RSAPublicKey,
    "RS512": RSAPublicKey,
    "PS256": RSAPublicKey,
    "PS384": RSAPublicKey,
    "PS512": RSAPublicKey,
    "ES256": EllipticCurvePublicKey,
    "ES384": EllipticCurvePublicKey,
    "ES512": EllipticCurvePublicKey,
}
_PYJWT_ERRORS: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.InvalidIssuerError, "bad_issuer", "the access token was issued by someone else"),
    (jwt.InvalidAudienceError, "bad_audience", "the access token is meant for another audience"),
    (jwt.MissingRequiredClaimError, "missing_claim", "the access token lacks a required claim"),
    (jwt.InvalidSignatureError, "bad_signature", "the access token signature is invalid"),
)


def _header_names_crit(token: str) -> bool:
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        return False
    return isinstance(header, dict) and "crit" in header


def token_kid(token: str) -> str | None:
    """The `kid` a token's header names, read without verifying anything: use it only for a
    token that `TokenVerifier` has already accepted."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


class TokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        key_source: KeySource,
        algorithms: Sequence[str] = ("RS256",),
        leeway: int = 30,
        denylist: Denylist | None = None,
        cache: VerifiedTokenCache | None = None,
        metrics: Metrics = NO_METRICS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unknown = set(algorithms) - KEY_TYPES.keys()
        if unknown:  # `none` and HMAC can never be configured: they'd accept forged tokens
            raise ValueError(f"unsupported algorithms: {sorted(unknown)}")
        self.issuer = issuer
        self.audience = audience
        self.key_source = key_source
        self.algorithms = frozenset(algorithms)
        self.leeway = leeway
        self.denylist = denylist
        self.cache = cache
        self._metrics = metrics
        self._clock = clock

    def _fail(self, reason: str, description: str) -> TokenError:
        self._metrics.token_refused(reason)
        return TokenError(reason, description)

    async def verify(self, token: str) -> AccessTokenClaims:
        """Verified claims, or TokenError. Cached tokens still honour expiry and revocation."""
        if self.cache is not None:
            hit = self.cache.get(token, self._clock())
            if hit is not None:
                self._check_revoked(*hit)
                return hit[0]
        claims, kid = await self._verify(token, verify_exp=True)
        self._check_revoked(claims, kid)
        if self.cache is not None:
            self.cache.put(token, claims, kid)
        return claims

    async def verify_expired_ok(self, token: str) -> AccessTokenClaims:
        """Everything but `exp` (for transparent refresh); revoked tokens are still refused."""
        claims, kid = await self._verify(token, verify_exp=False)
        self._check_revoked(claims, kid)
        return claims

    def _check_revoked(self, claims: AccessTokenClaims, kid: str | None) -> None:
        if self.denylist is not None:
            if not self.denylist.synced:
                # Fail closed: until the revocation state is loaded or read from the feed, a
                # revoked token can't be told from a good one.
                raise self._fail(
                    "revocations_unknown", "the revocation state is not known yet; try again"
                )
            reason = self.denylist.check(claims, kid)
            if reason is not None:
                raise self._fail("revoked", f"the access token was revoked ({reason})")

    async def _verify(self, token: str, *, verify_exp: bool) -> tuple[AccessTokenClaims, str]:
        if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise self._fail("malformed", "the access token is not a signed JWT")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            # PyJWT itself refuses some `crit` headers here; keep the precise reason.
            if _header_names_crit(token):
                raise self._fail(
                    "crit_unsupported", "the token uses unsupported critical headers"
                ) from None
            raise self._fail("malformed", "the access token is not a signed JWT") from None
        key, kid, alg = await self._select_key(header)
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    # Times are checked below against our own clock, with one leeway and
                    # precise reasons (PyJWT would read the system clock).
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "strict_aud": False,
                },
            )
        except jwt.PyJWTError as exc:
            for error_type, reason, description in _PYJWT_ERRORS:
                if isinstance(exc, error_type):
                    raise self._fail(reason, description) from None
            raise self._fail("malformed", "the access token could not be decoded") from None
        try:
            claims = AccessTokenClaims.from_payload(payload)
        except ClaimsError:
            raise self._fail("malformed", "the access token's claims are malformed") from None
        now = self._clock()
        # RFC 7519 §4.1.4-4.1.6, with the same leeway for clock skew on each.
        if verify_exp and claims.exp <= now - self.leeway:
            raise self._fail("expired", "the access token expired")
        if claims.nbf is not None and claims.nbf > now + self.leeway:
            raise self._fail("not_yet_valid", "the access token is not valid yet")
        if claims.iat > now + self.leeway:
            raise self._fail("issued_in_future", "the access token was issued in the future")
        return claims, kid

    async def _select_key(self, header: dict[str, Any]) -> tuple[VerificationKey, str, str]:
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYP:
            raise self._fail("bad_typ", "the token is not an access token (typ)")
        if any(name in header for name in FORBIDDEN_HEADERS):
            raise self._fail(
                "forbidden_header", "the token names its own key, which is not accepted"
            )
        if "crit" in header:  # RFC 7515 §4.1.11: we understand no extensions
            raise self._fail("crit_unsupported", "the token uses unsupported critical headers")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise self._fail("alg_not_allowed", "the token's algorithm is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
            raise self._fail("unknown_kid", "the token's signing key is unknown")
        try:
            key = await self.key_source.get_key(kid)
        except KeySetStale:
            raise self._fail(
                "keys_stale", "the signing keys could not be refreshed for too long"
            ) from None
        if key is None:
            raise self._fail("unknown_kid", "the token's signing key is unknown")
        if not isinstance(key.key, KEY_TYPES[alg]) or (key.alg is not None and key.alg != alg):
            raise self._fail("alg_not_allowed", "the token's algorithm does not fit its key")
        return key, kid, alg


__all__ = ["ACCEPTED_TYP", "REQUIRED_CLAIMS", "TokenVerifier", "token_kid"]
