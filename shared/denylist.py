"""The resource side's revocation denylist: bounded, in memory, entries dropped after expiry.

Fed by the auth server's revocation feed (polling) or Redis pub/sub. Each entry carries the time
after which it no longer matters (the last moment a token it affects could still be valid), so
the list stays small. Checking a token is a handful of dict lookups.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Mapping
from typing import Any

from shared.claims import AccessTokenClaims

KINDS = ("sid", "jti", "user", "kid")


class Denylist:
    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self._max = max_entries
        self._clock = clock
        # kind -> value -> (until, not_before)
        self._entries: dict[str, dict[str, tuple[float, float | None]]] = {k: {} for k in KINDS}
        self._expiry: list[tuple[float, str, str]] = []  # heap of (until, kind, value)

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())

    def _add(self, kind: str, value: str, until: float, not_before: float | None = None) -> None:
        if until <= self._clock():
            return
        current = self._entries[kind].get(value)
        if current is not None:
            until = max(until, current[0])
            if current[1] is not None and not_before is not None:
                not_before = max(not_before, current[1])
        self._entries[kind][value] = (until, not_before)
        heapq.heappush(self._expiry, (until, kind, value))
        self._purge()

    def _purge(self) -> None:
        # Pop the soonest-expiring entries while they have expired or the list is over its bound.
        # A heap item is stale when its entry was extended later; it is skipped.
        now = self._clock()
        while self._expiry and (self._expiry[0][0] <= now or len(self) > self._max):
            until, kind, value = heapq.heappop(self._expiry)
            current = self._entries[kind].get(value)
            if current is not None and current[0] == until:
                del self._entries[kind][value]

    def add_sid(self, sid: str, until: float) -> None:
        self._add("sid", sid, until)

    def add_jti(self, jti: str, until: float) -> None:
        self._add("jti", jti, until)

    def add_user_not_before(self, sub: str, not_before: float, until: float) -> None:
        self._add("user", sub, until, not_before)

    def add_kid(self, kid: str, until: float) -> None:
        self._add("kid", kid, until)

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Apply one feed event `{type, value, not_before, expires_at}`; False if it is malformed."""
        kind, value, until = event.get("type"), event.get("value"), event.get("expires_at")
        if kind not in KINDS or not isinstance(value, str) or not isinstance(until, int | float):
            return False
        if kind == "user":
            not_before = event.get("not_before")
            if not isinstance(not_before, int | float):
                return False
            self.add_user_not_before(value, float(not_before), float(until))
        else:
            self._add(kind, value, float(until))
        return True

    def check(self, claims: AccessTokenClaims, kid: str | None) -> str | None:
        """Why this token is revoked, or None. Expired entries never match."""
        now = self._clock()
        entries = self._entries
        for kind, value in (("jti", claims.jti), ("sid", claims.sid), ("kid", kid)):
            if value is not None:
                hit = entries[kind].get(value)
                if hit is not None and hit[0] > now:
                    return {
                        "jti": "token revoked",
                        "sid": "session ended",
                        "kid": "signing key retired",
                    }[kind]
        user = entries["user"].get(claims.sub)
        if user is not None and user[0] > now and user[1] is not None and claims.iat < int(user[1]):
            # `iat` has whole seconds: a token from the very second of the logout is not refused
            # here, or a login right after "log out everywhere" would be refused for its whole
            # life. Session tokens of that second are refused by their own `sid` event.
            return "session ended"
        return None


__all__ = ["Denylist"]
