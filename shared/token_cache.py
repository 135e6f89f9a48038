"""Verified-token cache: a token seen before is not verified again before its `exp`.

Keyed by the token's SHA-256, bounded (least recently used goes first). The verifier still
checks expiry and the revocation denylist on every hit.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from shared.claims import AccessTokenClaims


class VerifiedTokenCache:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._max = max_entries
        self._entries: OrderedDict[bytes, tuple[AccessTokenClaims, str | None]] = OrderedDict()

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str, now: float) -> tuple[AccessTokenClaims, str | None] | None:
        """The cached (claims, kid) if present and not expired at `now` (leeway not applied)."""
        key = self._key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0].exp <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, token: str, claims: AccessTokenClaims, kid: str | None) -> None:
        key = self._key(token)
        self._entries[key] = (claims, kid)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["VerifiedTokenCache"]
