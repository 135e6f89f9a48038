"""The revocation feed: every ended session, revoked access token, user "not before" time and
retired key becomes an event that resource servers read (GET /revocations) or receive (Redis).

Each event carries the time after which it no longer matters: the latest expiry of any access
token it can affect. Past that, the sweeper deletes it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_server.persistence.models import Revocation
from auth_server.settings import AuthSettings
from shared.db import utcnow

log = logging.getLogger("auth_server.revocation")

SID, JTI, USER, KID = "sid", "jti", "user", "kid"
# Resource servers allow clock skew; keep events that long past the last token's expiry.
MARGIN = dt.timedelta(seconds=60)


class BadCursor(ValueError):
    pass


def channel(settings: AuthSettings) -> str:
    return f"{settings.redis_prefix}:revocations"


def token_horizon(settings: AuthSettings, now: dt.datetime | None = None) -> dt.datetime:
    """The latest moment an access token issued up to now can still be accepted."""
    return (now or utcnow()) + dt.timedelta(seconds=settings.access_token_ttl) + MARGIN


def add(
    db: AsyncSession,
    kind: str,
    value: str,
    expires_at: dt.datetime,
    not_before: dt.datetime | None = None,
) -> Revocation:
    """Add an event to the caller's transaction; broadcast it after the commit."""
    row = Revocation(
        kind=kind, value=value, not_before=not_before, created_at=utcnow(), expires_at=expires_at
    )
    db.add(row)
    return row


def as_event(row: Revocation) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.kind,
        "value": row.value,
        "not_before": row.not_before.timestamp() if row.not_before else None,
        "expires_at": row.expires_at.timestamp(),
    }


async def broadcast(redis: Any | None, settings: AuthSettings, rows: Sequence[Revocation]) -> None:
    """Publish committed events on Redis (when configured). The feed stays the source of truth,
    so a failed publish is logged, never raised: pollers will still see the event."""
    if redis is None or not rows:
        return
    try:
        for row in rows:
            await redis.publish(channel(settings), json.dumps(as_event(row)))
    except Exception as exc:
        log.warning("could not publish revocations on Redis: %s", exc)


def parse_cursor(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or len(raw) > 18:
        raise BadCursor("the cursor is not valid")
    return int(raw)


async def read_feed(db: AsyncSession, since: int, limit: int, settle: float) -> dict[str, Any]:
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
    return {"events": [as_event(r) for r in rows], "cursor": str(cursor), "has_more": has_more}


def kid_retired_hook(
    session_maker: async_sessionmaker[AsyncSession], settings: AuthSettings, redis: Any | None
) -> Callable[[str, dt.datetime], Awaitable[None]]:
    """The KeyStore's on_key_retired hook: a retired key's tokens stop verifying everywhere."""

    async def hook(kid: str, until: dt.datetime) -> None:
        from auth_server.sessions import audit

        async with session_maker() as db:
            row = add(db, KID, kid, until)
            audit.record(db, audit.KEY_RETIRED, detail={"kid": kid})
            await db.commit()
        await broadcast(redis, settings, [row])

    return hook
