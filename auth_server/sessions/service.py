"""Login sessions and their refresh tokens (RFC 6749 §6, RFC 9700 §4.14)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.persistence.models import LoginSession, RefreshToken
from shared.db import utcnow


def hash_refresh_token(token: str) -> str:
    """Refresh tokens are stored only as their SHA-256 (they are 256 random bits: no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


@dataclass(frozen=True, slots=True)
class StartedSession:
    session_id: str
    refresh_token: str


async def start_session(
    db: AsyncSession,
    *,
    user_id: str,
    client_id: str,
    scope: str,
    refresh_ttl: int,
    ip: str | None,
    user_agent: str | None,
) -> StartedSession:
    """Create a session and its first refresh token (the caller commits)."""
    now = utcnow()
    sid = secrets.token_urlsafe(16)
    token = new_refresh_token()
    expires = now + dt.timedelta(seconds=refresh_ttl)
    db.add(
        LoginSession(
            id=sid,
            user_id=user_id,
            client_id=client_id,
            scope=scope,
            created_at=now,
            last_used_at=now,
            expires_at=expires,
            ip=ip,
            user_agent=(user_agent or "")[:512] or None,
        )
    )
    db.add(
        RefreshToken(
            token_hash=hash_refresh_token(token),
            session_id=sid,
            scope=scope,
            created_at=now,
            expires_at=expires,
        )
    )
    await db.flush()
    return StartedSession(session_id=sid, refresh_token=token)
