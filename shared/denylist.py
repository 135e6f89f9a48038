"""The resource side's revocation denylist: bounded, in memory, saved to disk, and fail-closed.

Fed by the auth server's revocation feed (polling) or Redis pub/sub. Each entry carries the time
after which it no longer matters (the last moment a token it affects could still be accepted),
extended by this verifier's own leeway, so the list stays small. Checking a token is a handful of
dict lookups.

When the list is full it never forgets a revocation: the entries that expire soonest are
dropped, and a *floor* takes their place: every token issued up to the latest revocation dropped
so far is refused. Those tokens are the oldest ones, close to their own expiry, so the price of a
flood is that some old, valid tokens must be refreshed a little early; a revoked token never
verifies again. Retired signing keys are kept forever (they are few), so a stolen key stays
refused even after its event left the feed.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from shared.claims import AccessTokenClaims

KINDS = ("sid", "jti", "user", "kid")
STATE_VERSION = 1


def issued_before(iat: int, not_before: float) -> bool:
    """The one "not before" rule, used by every verifier and by the auth server itself.

    `iat` has whole seconds, so the comparison is in whole seconds: a token from the very second
    of a logout is not refused here, or a login right after "log out everywhere" would be refused
    for its whole life. Session tokens of that second are refused by their own `sid` event.
    """
    return iat < int(not_before)


@dataclass(frozen=True, slots=True)
class _Entry:
    until: float  # the entry no longer matters after this (leeway included)
    not_before: float | None  # kind "user": tokens issued before it are refused
    revoked_at: float  # when the revocation happened (for the eviction floor)


_REASONS = {"jti": "token revoked", "sid": "session ended"}


class Denylist:
    def __init__(
        self,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.time,
        *,
        leeway: float = 0,
        synced: bool = True,
    ) -> None:
        self._max = max_entries
        self._clock = clock
        self._leeway = leeway
        self._entries: dict[str, dict[str, _Entry]] = {"sid": {}, "jti": {}, "user": {}}
        self._kids: dict[str, float] = {}  # retired kid -> revoked_at; never expire
        self._expiry: list[tuple[float, str, str]] = []  # heap of (until, kind, value)
        self._floor = -math.inf  # tokens issued at or before this are refused (evictions)
        # False until the state is loaded or read from the feed: verifiers refuse meanwhile.
        self.synced = synced

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values()) + len(self._kids)

    @property
    def heap_size(self) -> int:
        return len(self._expiry)

    @property
    def floor(self) -> float:
        return self._floor

    # -- adding -------------------------------------------------------------------------------

    def _put(self, kind: str, value: str, entry: _Entry) -> None:
        """Insert or extend one entry; a repeat of what is known changes nothing."""
        if entry.until <= self._clock():
            return
        table = self._entries[kind]
        current = table.get(value)
        if current is not None:
            not_before = current.not_before
            if entry.not_before is not None:
                not_before = max(entry.not_before, not_before or -math.inf)
            entry = _Entry(
                until=max(entry.until, current.until),
                not_before=not_before,
                revoked_at=max(entry.revoked_at, current.revoked_at),
            )
            if entry == current:
                return  # de-duplicated: no new heap item
        table[value] = entry
        if current is None or entry.until > current.until:
            heapq.heappush(self._expiry, (entry.until, kind, value))
        self._purge()

    def _add(
        self,
        kind: str,
        value: str,
        until: float,
        not_before: float | None = None,
        revoked_at: float | None = None,
    ) -> None:
        now = self._clock()
        revoked = revoked_at if revoked_at is not None else (not_before or now)
        if kind == "kid":
            self._kids[value] = max(revoked, self._kids.get(value, -math.inf))
            return
        self._put(kind, value, _Entry(until + self._leeway, not_before, revoked))

    def _purge(self) -> None:
        """Drop expired entries; while over the bound, drop the soonest-expiring live ones and
        raise the floor past their revocations. A heap item is stale when its entry was extended
        or removed later; it is skipped."""
        now = self._clock()
        over = len(self) - len(self._kids) - self._max
        while self._expiry and (self._expiry[0][0] <= now or over > 0):
            until, kind, value = heapq.heappop(self._expiry)
            current = self._entries[kind].get(value)
            if current is None or current.until != until:
                continue
            del self._entries[kind][value]
            if until > now:  # evicted while it still mattered: refuse rather than forget
                covered = current.not_before if kind == "user" else current.revoked_at
                self._floor = max(self._floor, covered if covered is not None else now)
                over -= 1
        if len(self._expiry) > 2 * (len(self) + 16):
            self._compact()

    def _compact(self) -> None:
        self._expiry = [
            (entry.until, kind, value)
            for kind, table in self._entries.items()
            for value, entry in table.items()
        ]
        heapq.heapify(self._expiry)

    def add_sid(self, sid: str, until: float, revoked_at: float | None = None) -> None:
        self._add("sid", sid, until, revoked_at=revoked_at)

    def add_jti(self, jti: str, until: float, revoked_at: float | None = None) -> None:
        self._add("jti", jti, until, revoked_at=revoked_at)

    def add_user_not_before(self, sub: str, not_before: float, until: float) -> None:
        self._add("user", sub, until, not_before)

    def add_kid(self, kid: str, until: float = math.inf) -> None:
        self._add("kid", kid, until)

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Apply one feed event `{type, value, not_before, expires_at[, revoked_at]}`; False if it
        is malformed. Without `revoked_at`, the time it is applied stands in (later is safer)."""
        kind, value = event.get("type"), event.get("value")
        until, revoked_at, not_before = (
            event.get("expires_at"),
            event.get("revoked_at"),
            event.get("not_before"),
        )
        if kind not in KINDS or not isinstance(value, str) or not _is_number(until):
            return False
        if revoked_at is not None and not _is_number(revoked_at):
            return False
        if kind == "user":
            if not _is_number(not_before):
                return False
            self._add("user", value, until, not_before, revoked_at)
        else:
            self._add(kind, value, until, revoked_at=revoked_at)
        return True

    # -- checking -------------------------------------------------------------------------------

    def kid_revoked(self, kid: str) -> bool:
        return kid in self._kids

    def check(self, claims: AccessTokenClaims, kid: str | None) -> str | None:
        """Why this token is revoked, or None. Expired entries never match."""
        if kid is not None and kid in self._kids:
            return "signing key retired"
        now = self._clock()
        entries = self._entries
        for kind, value in (("jti", claims.jti), ("sid", claims.sid)):
            if value is not None:
                hit = entries[kind].get(value)
                if hit is not None and hit.until > now:
                    return _REASONS[kind]
        user = entries["user"].get(claims.sub)
        if (
            user is not None
            and user.until > now
            and user.not_before is not None
            and issued_before(claims.iat, user.not_before)
        ):
            return "session ended"
        if claims.iat <= self._floor:
            return "issued before revocations this server had to compact; refresh it"
        return None

    # -- saving and loading -----------------------------------------------------------------------

    def snapshot(self, cursor: str | None) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "cursor": cursor,
            "floor": self._floor if self._floor != -math.inf else None,
            "kids": dict(self._kids),
            "entries": [
                [kind, value, e.until, e.not_before, e.revoked_at]
                for kind, table in self._entries.items()
                for value, e in table.items()
            ],
        }

    def save(self, path: Path, cursor: str | None) -> None:
        write_atomically(path, json.dumps(self.snapshot(cursor), separators=(",", ":")))

    def load(self, path: Path) -> str | None:
        """Load a saved state (entries already carry this verifier's leeway); returns its feed
        cursor, or None when there is no usable file (then nothing is loaded)."""
        try:
            state = json.loads(path.read_text())
            if state.get("version") != STATE_VERSION:
                return None
            entries = [
                (str(kind), str(value), float(until), _opt_float(nb), float(revoked))
                for kind, value, until, nb, revoked in state["entries"]
                if kind in self._entries
            ]
            kids = {str(k): float(v) for k, v in state.get("kids", {}).items()}
            floor = _opt_float(state.get("floor"))
            cursor = state.get("cursor")
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None
        for kind, value, until, not_before, revoked_at in entries:
            self._put(kind, value, _Entry(until, not_before, revoked_at))
        for kid, revoked_at in kids.items():
            self._kids[kid] = max(revoked_at, self._kids.get(kid, -math.inf))
        if floor is not None:
            self._floor = max(self._floor, floor)
        return str(cursor) if cursor is not None else ""


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _opt_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def write_atomically(path: Path, text: str) -> None:
    """Write `text` beside `path` and rename it over: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


__all__ = ["KINDS", "Denylist", "issued_before", "write_atomically"]
