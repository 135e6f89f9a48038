"""The revocation feed: every ended session, revoked access token, user "not before" time and
retired key becomes an event that resource servers read (GET /revocations) or receive (Redis).

Each event carries the time after which it no longer matters: the latest expiry of any access
token it can affect (`settings.token_horizon`). Past that, the sweeper deletes it. Events are
written into the caller's transaction and published on Redis only after it commits.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.persistence.models import Revocation
from shared.service.db import after_commit, utcnow
from shared.text import is_ascii_number

log = logging.getLogger("auth_server.revocations")

MAX_CURSOR_DIGITS = 18


class RevocationKind(StrEnum):
    SID = "sid"  # an ended session: every access token carrying this `sid`
    JTI = "jti"  # one revoked access token
    USER = "user"  # every token of a user issued before `not_before`
    KID = "kid"  # every token signed by a key retired in an emergency


class BadCursor(ValueError):
    pass


def as_event(row: Revocation) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.kind,
        "value": row.value,
        "not_before": row.not_before.timestamp() if row.not_before else None,
        "expires_at": row.expires_at.timestamp(),
        # Tokens it affects were issued before this: a verifier whose list overflows refuses
        # every token issued up to it rather than forget the event.
        "revoked_at": row.created_at.timestamp(),
    }


class RevocationPublisher:
    """Writes events into a transaction, and publishes them on Redis once it has committed.

    The feed (the table) is the source of truth; Redis only makes delivery fast. A failed
    publish is therefore logged, never raised: pollers still see the event."""

    def __init__(self, redis: Any | None, channel: str) -> None:
        self._redis = redis  # redis.asyncio.Redis, when configured
        self.channel = channel

    async def add(
        self,
        db: AsyncSession,
        kind: RevocationKind,
        value: str,
        expires_at: dt.datetime,
        *,
        not_before: dt.datetime | None = None,
    ) -> Revocation:
        row = Revocation(
            kind=kind.value,
            value=value,
            not_before=not_before,
            created_at=utcnow(),
            expires_at=expires_at,
        )
        db.add(row)
        await db.flush()  # assigns the id, which is the feed's cursor
        if self._redis is not None:
            after_commit(db, lambda: self.publish([row]))
        return row

    async def publish(self, rows: Sequence[Revocation]) -> None:
        if self._redis is None or not rows:
            return
        try:
            for row in rows:
                await self._redis.publish(self.channel, json.dumps(as_event(row)))
        except Exception as exc:
            log.warning("could not publish revocations on Redis: %s", exc)


def parse_cursor(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not is_ascii_number(raw) or len(raw) > MAX_CURSOR_DIGITS:
        raise BadCursor("the cursor is not valid")
    return int(raw)


@dataclass(frozen=True, slots=True)
class FeedPage:
    events: list[dict[str, Any]]
    cursor: int
    has_more: bool

    def as_json(self) -> dict[str, Any]:
        return {"events": self.events, "cursor": str(self.cursor), "has_more": self.has_more}


async def read_feed(db: AsyncSession, since: int, limit: int, settle: float) -> FeedPage:
    """Events after `since`. Events younger than `settle` seconds are sent again on the next
    read: a transaction that took its id earlier but committed later is then still delivered
    (ids are not visible in commit order)."""
    now = utcnow()
    rows = (
        await db.scalars(
            select(Revocation)
            .where(Revocation.id > since, Revocation.expires_at > now)
            .order_by(Revocation.id)
            .limit(limit + 1)
        )
    ).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    cursor = since
    for row in rows:
        if row.created_at > now - dt.timedelta(seconds=settle):
            break  # this one, and everything after it, is sent again next time
        cursor = row.id
    return FeedPage([as_event(r) for r in rows], cursor, has_more)


async def user_not_before(db: AsyncSession, sub: str) -> dt.datetime | None:
    """The latest "not before" time published for a user, if any."""
    return await db.scalar(
        select(Revocation.not_before)
        .where(Revocation.kind == RevocationKind.USER.value, Revocation.value == sub)
        .order_by(Revocation.not_before.desc())
        .limit(1)
    )


async def _revoked(db: AsyncSession, kind: RevocationKind, value: str) -> bool:
    hit = await db.scalar(
        select(Revocation.id)
        .where(Revocation.kind == kind.value, Revocation.value == value)
        .limit(1)
    )
    return hit is not None


async def jti_revoked(db: AsyncSession, jti: str) -> bool:
    return await _revoked(db, RevocationKind.JTI, jti)


async def kid_revoked(db: AsyncSession, kid: str) -> bool:
    """A signing key retired in an emergency (its event stays in the table until the sweeper
    removes it, by which time every token it signed has expired)."""
    return await _revoked(db, RevocationKind.KID, kid)


__all__ = [
    "BadCursor",
    "FeedPage",
    "RevocationKind",
    "RevocationPublisher",
    "as_event",
    "jti_revoked",
    "kid_revoked",
    "parse_cursor",
    "read_feed",
    "user_not_before",
]
