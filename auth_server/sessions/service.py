"""Login sessions and their refresh tokens (RFC 6749 §6, RFC 9700 §4.14).

A refresh token is 256 random bits; only its SHA-256 is stored. Every use rotates it in one
conditional UPDATE (`... WHERE used_at IS NULL`), so of two racing requests exactly one rotates.
The token that was just rotated may be presented again within the grace window and gets the
same answer; any other reuse is theft and ends the whole session.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.persistence.models import LoginSession, RefreshToken, Revocation
from auth_server.sessions import audit, revocation
from shared.db import utcnow

if TYPE_CHECKING:
    from auth_server.context import AuthContext

MAX_REFRESH_TOKEN_LENGTH = 512


def hash_refresh_token(token: str) -> str:
    """Refresh tokens are stored only as their SHA-256 (they are 256 random bits: no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


@dataclass(frozen=True, slots=True)
class StartedSession:
    session_id: str
    refresh_token: str


class RefreshFailed(Exception):
    """invalid_grant, with a reason for the audit trail (never shown in detail to the client)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


def is_live(session: LoginSession | None, now: dt.datetime) -> bool:
    return session is not None and session.ended_at is None and session.expires_at > now


async def rotate(
    ctx: AuthContext,
    db: AsyncSession,
    *,
    token: str,
    client_id: str,
    requested_scope: frozenset[str] | None,
    ip: str | None,
    user_agent: str | None,
) -> dict[str, Any]:
    """The refresh_token grant's work. Returns the RFC 6749 §5.1 body; raises RefreshFailed or
    InvalidScope. Commits."""
    from auth_server.oauth.errors import InvalidScope
    from auth_server.oauth.tokens import token_response

    if not token or len(token) > MAX_REFRESH_TOKEN_LENGTH:
        raise RefreshFailed("malformed")
    token_hash = hash_refresh_token(token)
    now = utcnow()
    row = await db.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
    if row is None:
        raise RefreshFailed("unknown")
    session = await db.get(LoginSession, row.session_id)
    if session is None or session.client_id != client_id:
        raise RefreshFailed("client_mismatch" if session else "unknown")
    if not is_live(session, now):
        raise RefreshFailed("session_ended")

    if row.used_at is None:
        scope = row.scope
        if requested_scope is not None:
            # RFC 6749 §6: a refresh may narrow the scope, never widen it.
            if not requested_scope <= frozenset(row.scope.split()):
                raise InvalidScope("the requested scope exceeds the session's scope")
            scope = " ".join(sorted(requested_scope))
        won = await db.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
        )
        if won.rowcount == 1:  # type: ignore[attr-defined]
            child_token = new_refresh_token()
            db.add(
                RefreshToken(
                    token_hash=hash_refresh_token(child_token),
                    session_id=session.id,
                    parent_id=row.id,
                    scope=scope,
                    created_at=now,
                    expires_at=session.expires_at,
                )
            )
            access = await ctx.tokens.issue_access_token(
                sub=session.user_id, client_id=client_id, scope=scope, sid=session.id
            )
            body = token_response(access, child_token)
            await db.execute(
                update(RefreshToken)
                .where(RefreshToken.id == row.id)
                .values(grace_response=ctx.grace.seal(body, token_hash))
            )
            session.last_used_at = now
            audit.record(
                db,
                audit.REFRESH,
                user_id=session.user_id,
                session_id=session.id,
                client_id=client_id,
                ip=ip,
                user_agent=user_agent,
            )
            await db.commit()
            return body
        # Lost the race: the winner has committed by now (our UPDATE waited for its lock).
        session_id = session.id
        await db.rollback()
        row = await db.scalar(
            select(RefreshToken)
            .where(RefreshToken.token_hash == token_hash)
            .execution_options(populate_existing=True)
        )
        session = await db.get(LoginSession, session_id, populate_existing=True)
        assert row is not None and session is not None

    return await _replay(ctx, db, row, session, token_hash, ip=ip, user_agent=user_agent)


async def _replay(
    ctx: AuthContext,
    db: AsyncSession,
    row: RefreshToken,
    session: LoginSession,
    token_hash: str,
    *,
    ip: str | None,
    user_agent: str | None,
) -> dict[str, Any]:
    """A used token again: the same answer inside the grace window if it is the one that was
    just rotated; otherwise theft (RFC 9700 §4.14.2), and the whole session ends."""
    now = utcnow()
    grace = dt.timedelta(seconds=ctx.settings.refresh_reuse_grace)
    row_id, used_at, session_id = row.id, row.used_at, session.id
    user_id, client_id = session.user_id, session.client_id
    child_used = await db.scalar(
        select(RefreshToken.used_at).where(RefreshToken.parent_id == row_id)
    )
    if used_at is not None and now - used_at <= grace and child_used is None:
        blob = row.grace_response
        for _ in range(20):  # the winner may be between its UPDATE and its commit
            if blob is not None:
                break
            await asyncio.sleep(0.05)
            await db.rollback()
            blob = await db.scalar(
                select(RefreshToken.grace_response).where(RefreshToken.id == row_id)
            )
        body = ctx.grace.open(blob, token_hash) if blob is not None else None
        if body is not None:
            audit.record(
                db,
                audit.REFRESH_GRACE_REPLAY,
                user_id=user_id,
                session_id=session_id,
                client_id=client_id,
                ip=ip,
                user_agent=user_agent,
            )
            await db.commit()
            return body
    live = await db.get(LoginSession, session_id, populate_existing=True)
    if live is not None:
        await end_sessions(
            ctx,
            db,
            [live],
            reason="refresh_token_reuse",
            audit_type=audit.REFRESH_REUSE,
            ip=ip,
            user_agent=user_agent,
        )
    raise RefreshFailed("reuse")


async def end_sessions(
    ctx: AuthContext,
    db: AsyncSession,
    sessions: Sequence[LoginSession],
    *,
    reason: str,
    audit_type: str,
    ip: str | None = None,
    user_agent: str | None = None,
    user_not_before: str | None = None,
) -> int:
    """End sessions, publish their `sid`s (and optionally a user "not before" time), commit,
    then broadcast. Returns how many were live."""
    now = utcnow()
    horizon = revocation.token_horizon(ctx.settings, now)
    events: list[Revocation] = []
    ended = 0
    for session in sessions:
        if session.ended_at is None:
            session.ended_at, session.end_reason = now, reason
            ended += 1
            events.append(revocation.add(db, revocation.SID, session.id, horizon))
            audit.record(
                db,
                audit_type,
                user_id=session.user_id,
                session_id=session.id,
                client_id=session.client_id,
                ip=ip,
                user_agent=user_agent,
                detail={"reason": reason},
            )
    if user_not_before is not None:
        events.append(revocation.add(db, revocation.USER, user_not_before, horizon, not_before=now))
    await db.commit()
    await revocation.broadcast(ctx.redis, ctx.settings, events)
    return ended


async def live_sessions(db: AsyncSession, user_id: str | None = None) -> list[LoginSession]:
    now = utcnow()
    query = select(LoginSession).where(
        LoginSession.ended_at.is_(None), LoginSession.expires_at > now
    )
    if user_id is not None:
        query = query.where(LoginSession.user_id == user_id)
    return list((await db.scalars(query.order_by(LoginSession.created_at.desc()))).all())


async def revoke_refresh_token(
    ctx: AuthContext,
    db: AsyncSession,
    token: str,
    client_id: str,
    *,
    ip: str | None,
    user_agent: str | None,
) -> bool:
    """RFC 7009: a refresh token's revocation ends its whole session. False if unknown/foreign."""
    if not token or len(token) > MAX_REFRESH_TOKEN_LENGTH:
        return False
    row = await db.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(token))
    )
    if row is None:
        return False
    session = await db.get(LoginSession, row.session_id)
    if session is None or session.client_id != client_id:
        return False
    await end_sessions(
        ctx, db, [session], reason="revoked", audit_type=audit.REVOKE, ip=ip, user_agent=user_agent
    )
    return True


async def revoke_access_token(
    ctx: AuthContext,
    db: AsyncSession,
    *,
    jti: str,
    sub: str,
    sid: str | None,
    client_id: str,
    exp: int,
    ip: str | None,
    user_agent: str | None,
) -> None:
    """RFC 7009: an access token's `jti` is denied until its `exp`."""
    until = dt.datetime.fromtimestamp(exp, dt.UTC) + revocation.MARGIN
    row = revocation.add(db, revocation.JTI, jti, until)
    audit.record(
        db,
        audit.REVOKE,
        user_id=sub,
        session_id=sid,
        client_id=client_id,
        ip=ip,
        user_agent=user_agent,
        detail={"token_type": "access_token"},
    )
    await db.commit()
    await revocation.broadcast(ctx.redis, ctx.settings, [row])


async def token_is_revoked(
    db: AsyncSession, *, jti: str, sid: str | None, sub: str, iat: int
) -> bool:
    """The auth server's own view of an access token's revocation (for introspection and for
    its own protected endpoints)."""
    if sid is not None:
        session = await db.get(LoginSession, sid)
        if not is_live(session, utcnow()):
            return True
    hit = await db.scalar(
        select(Revocation.id)
        .where(Revocation.kind == revocation.JTI, Revocation.value == jti)
        .limit(1)
    )
    if hit is not None:
        return True
    not_before = await db.scalar(
        select(Revocation.not_before)
        .where(Revocation.kind == revocation.USER, Revocation.value == sub)
        .order_by(Revocation.not_before.desc())
        .limit(1)
    )
    # Whole seconds, as in shared.denylist.Denylist.check: the logout's own second is spared.
    return not_before is not None and iat < int(not_before.timestamp())
