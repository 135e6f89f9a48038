"""Why a token was refused: one exception type with a stable reason code.

The reason labels metrics; the description is safe to send as RFC 6750 `error_description`
(it never echoes the token).
"""

from __future__ import annotations

REASONS = frozenset(
    {
        "malformed",
        "bad_typ",
        "alg_not_allowed",
        "unknown_kid",
        "bad_signature",
        "bad_issuer",
        "bad_audience",
        "expired",
        "not_yet_valid",
        "issued_in_future",
        "missing_claim",
        "crit_unsupported",
        "forbidden_header",
        "revoked",
        "keys_stale",  # no successful JWKS fetch for longer than the allowed staleness
        "revocations_unknown",  # the revocation state is neither loaded nor synced yet
    }
)


class KeySetStale(Exception):
    """A key source's keys are too old to be trusted (no successful fetch for too long)."""


class TokenError(Exception):
    def __init__(self, reason: str, description: str) -> None:
        assert reason in REASONS, reason
        super().__init__(description)
        self.reason = reason
        self.description = description


__all__ = ["REASONS", "KeySetStale", "TokenError"]
