"""TokenVerifier: the only place that decides whether an access token is good.

RFC 9068 (JWT access tokens) and RFC 8725 (JWT best practices): the algorithm comes from our
allowlist and must fit the key; the key comes only from our key source by `kid` — never from
`jku`, `x5u`, `x5c` or an embedded `jwk`; `crit` is refused; `typ` must be `at+jwt`.
Signatures are checked by PyJWT on `cryptography` with already-parsed key objects.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from pydantic import ValidationError

from shared.claims import AccessTokenClaims
from shared.denylist import Denylist
from shared.errors import TokenError
from shared.keys import KeySource, VerificationKey
from shared.metrics import verification_failures
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
    (jwt.ExpiredSignatureError, "expired", "the access token expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid", "the access token is not valid yet"),
    (jwt.InvalidIssuerError, "bad_issuer", "the access token was issued by someone else"),
    (jwt.InvalidAudienceError, "bad_audience", "the access token is meant for another audience"),
    (jwt.MissingRequiredClaimError, "missing_claim", "the access token lacks a required claim"),
    (jwt.InvalidSignatureError, "bad_signature", "the access token signature is invalid"),
)


def _header_names_crit(token: str) -> bool:
    import base64
    import json

    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except ValueError:
        return False
    return isinstance(header, dict) and "crit" in header


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
        self._failures = verification_failures()

    def _fail(self, reason: str, description: str) -> TokenError:
        self._failures.labels(reason=reason).inc()
        return TokenError(reason, description)

    async def verify(self, token: str) -> AccessTokenClaims:
        """Verified claims, or TokenError. Cached tokens still honour expiry and revocation."""
        if self.cache is not None:
            hit = self.cache.get(token, time.time())
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
                leeway=self.leeway,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_exp": verify_exp,
                    "verify_iat": False,  # checked below with the same leeway, as a clear reason
                    "strict_aud": False,
                },
            )
        except jwt.PyJWTError as exc:
            for error_type, reason, description in _PYJWT_ERRORS:
                if isinstance(exc, error_type):
                    raise self._fail(reason, description) from None
            raise self._fail("malformed", "the access token could not be decoded") from None
        try:
            claims = AccessTokenClaims.model_validate(payload)
        except ValidationError:
            raise self._fail("malformed", "the access token's claims are malformed") from None
        if claims.iat > time.time() + self.leeway:
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
        key = await self.key_source.get_key(kid)
        if key is None:
            raise self._fail("unknown_kid", "the token's signing key is unknown")
        if not isinstance(key.key, KEY_TYPES[alg]) or (key.alg is not None and key.alg != alg):
            raise self._fail("alg_not_allowed", "the token's algorithm does not fit its key")
        return key, kid, alg


__all__ = ["ACCEPTED_TYP", "REQUIRED_CLAIMS", "TokenVerifier"]
