"""Refresh tokens and their sessions in the database: the one place that looks a refresh token up
(hash → row → session) and changes it. Rotation, revocation and introspection all go through it.

Rows come back as small frozen records read with Core statements, not ORM objects: nothing is
loaded into the session's identity map, so a re-read after a lost race sees the winner's commit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.persistence.models import LoginSession, RefreshToken
from auth_server.sessions.authentication import Authentication
from shared.service.problem import database_unavailable

MAX_REFRESH_TOKEN_LENGTH = 512


def hash_refresh_token(token: str) -> str:
    """Refresh tokens are stored only as their SHA-256 (they are 256 random bits: no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    user_id: str
    client_id: str
    scope: str
    created_at: dt.datetime
    expires_at: dt.datetime
    ended_at: dt.datetime | None
    authentication: Authentication | None = None

    def is_live(self, now: dt.datetime) -> bool:
        return self.ended_at is None and self.expires_at > now


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    id: int
    token_hash: str
    scope: str
    created_at: dt.datetime
    used_at: dt.datetime | None
    grace_response: bytes | None
    session: SessionRecord


_COLUMNS = (
    RefreshToken.id,
    RefreshToken.token_hash,
    RefreshToken.scope,
    RefreshToken.created_at,
    RefreshToken.used_at,
    RefreshToken.grace_response,
    LoginSession.id,
    LoginSession.user_id,
    LoginSession.client_id,
    LoginSession.scope,
    LoginSession.created_at,
    LoginSession.expires_at,
    LoginSession.ended_at,
    LoginSession.auth_time,
    LoginSession.amr,
    LoginSession.acr,
)


class PostgresRotation:
    """PostgreSQL only: an unused refresh token rotated in two round trips and no transaction,
    on a connection of `open_rotation_pool`'s.

    One read finds the token and its session; then one statement does the whole rotation: mark
    the token used with its sealed answer, touch the session, add the child token (the audit
    trail counts routine rotations in memory: auth_server/audit.py). Every
    condition is checked again inside that statement (unused, a live session of this client, the
    signing key still active), so a race or a change since the read makes it match nothing, and
    the caller takes the transactional path. Each statement is atomic on its own.

    Hand-written SQL on asyncpg's connection (checked out of SQLAlchemy's pool): this is the
    hottest write path of the auth server, and building and executing the same statements
    through SQLAlchemy cost more CPU than the rest of the request together (profiled), and so
    did checking a connection out of SQLAlchemy's pool."""

    _FIND = """
SELECT t.id, t.token_hash, t.scope, t.created_at, t.used_at, t.grace_response,
       s.id, s.user_id, s.client_id, s.scope, s.created_at, s.expires_at, s.ended_at,
       s.auth_time, s.amr, s.acr
FROM refresh_tokens AS t JOIN sessions AS s ON s.id = t.session_id
WHERE t.token_hash = $1
"""
    _ROTATE = """
WITH claimed AS (
    UPDATE refresh_tokens AS t
    SET used_at = $1, grace_response = $2
    FROM sessions AS s
    WHERE t.token_hash = $3 AND t.used_at IS NULL
      AND s.id = t.session_id AND s.client_id = $4
      AND s.ended_at IS NULL AND s.expires_at > $1
      AND EXISTS (SELECT 1 FROM signing_keys WHERE kid = $5 AND state = 'active')
    RETURNING t.id, t.session_id, s.expires_at
), touched AS (
    UPDATE sessions SET last_used_at = $1
    WHERE id IN (SELECT session_id FROM claimed)
    RETURNING id
), child AS (
    INSERT INTO refresh_tokens (token_hash, session_id, parent_id, scope, created_at, expires_at)
    SELECT $6, session_id, id, $7, $1, expires_at FROM claimed
    RETURNING id
)
SELECT (SELECT count(*) FROM claimed) + (SELECT count(*) FROM touched)
       + (SELECT count(*) FROM child)
"""

    def __init__(self, driver: Any) -> None:
        self._driver = driver  # an asyncpg.Connection, outside any transaction

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, pool: Any, db: AsyncSession | None = None
    ) -> AsyncIterator[PostgresRotation]:
        """A connection from `pool` (`open_rotation_pool`), outside any transaction; or, when
        the request's session `db` already holds one (it read something, the client record for
        one), that one, and the rotation commits with the request. A request must never wait
        for a second connection from the pool it holds one of: enough of them at once take
        every connection and wait for each other until the pool times out. (No request waits
        for a requests' pool connection while it holds one of `pool`'s.)"""
        if db is not None and db.in_transaction():
            held = await db.connection()
            async with _driver_errors(held.invalidate):
                raw = await held.get_raw_connection()
                yield cls(raw.driver_connection)
            return
        async with _driver_errors(None):
            conn = await pool.acquire(timeout=ROTATION_POOL_TIMEOUT)
        try:

            async def terminate(_exc: BaseException) -> None:
                conn.terminate()

            async with _driver_errors(terminate, detached_is_lost=True):
                yield cls(conn)
        finally:
            await pool.release(conn)

    async def find(self, token: str) -> RefreshTokenRecord | None:
        if not token or len(token) > MAX_REFRESH_TOKEN_LENGTH:
            return None
        row = await self._driver.fetchrow(self._FIND, hash_refresh_token(token))
        if row is None:
            return None
        return _record(tuple(row))

    async def rotate(
        self,
        record: RefreshTokenRecord,
        *,
        child_token: str,
        scope: str,
        sealed_answer: bytes,
        kid: str,
        now: dt.datetime,
    ) -> bool:
        """True when the rotation happened (all three parts of it)."""
        changed = await self._driver.fetchval(
            self._ROTATE,
            now,
            sealed_answer,
            record.token_hash,
            record.session.client_id,
            kid,
            hash_refresh_token(child_token),
            scope,
        )
        return bool(changed == 3)


class DatabaseUnavailable(ConnectionError):
    """The database went away under a statement sent past SQLAlchemy (answered 503)."""


@contextlib.asynccontextmanager
async def _driver_errors(
    invalidate: Callable[[BaseException], Awaitable[None]] | None,
    *,
    detached_is_lost: bool = False,
) -> AsyncIterator[None]:
    """asyncpg's own errors, raised on its connection, bypass SQLAlchemy: nothing translates
    them and nothing tells the pool. A connection that died under a statement (a database
    restart: "connection was closed in the middle of operation", "cannot switch to state...")
    is therefore invalidated here (`invalidate`), so it never goes back to a pool, and the error
    becomes a DatabaseUnavailable, which the service answers with 503 and Retry-After instead of
    500. So does a database that can't be reached, or a pool with no connection free in time.

    `detached_is_lost`: the connection is an asyncpg pool's, held for the whole block. When the
    server closes it, that pool takes it back at once, and every later call on it raises
    InterfaceError ("connection has been released back to the pool"): inside the block that
    can only mean the connection was lost."""
    import asyncpg  # this path exists only on PostgreSQL

    driver_errors = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
    try:
        yield
    except (*driver_errors, OSError) as exc:
        detached = (
            detached_is_lost
            and isinstance(exc, asyncpg.InterfaceError)
            and "released back to the pool" in str(exc)
        )
        if not (detached or database_unavailable(exc)):
            raise
        if invalidate is not None:
            with contextlib.suppress(Exception):
                await invalidate(exc)
        raise DatabaseUnavailable(f"the database connection was lost: {exc}") from exc


# The refresh grant's own connections, per server process (besides the requests' pool of 10 +
# 10): a rotation holds its connection from the read to the statement, across the rate-limit
# round trip and the signature, and fewer than the requests in flight cost throughput (in
# process, 16 refreshes at once: 4 connections 0.86x, 8 0.92x of 16). Idle ones are closed.
ROTATION_POOL_SIZE = 10
ROTATION_POOL_IDLE = 60.0  # seconds
ROTATION_POOL_TIMEOUT = 30.0  # seconds to wait for a connection, as SQLAlchemy's pool


async def _keep_session_state(_conn: Any) -> None:
    """asyncpg's pool resets each connection it takes back (RESET ALL, UNLISTEN *, CLOSE ALL,
    advisory unlocks: one more round trip per request). The rotation's statements change no
    session state, so there is nothing to reset; an open transaction, which they never leave
    either, is still rolled back by the pool itself."""


async def open_rotation_pool(database_url: str, size: int = ROTATION_POOL_SIZE) -> Any:
    """PostgreSQL: an asyncpg pool for `PostgresRotation`, on the requests' database.

    A pool of its own rather than SQLAlchemy's: checking a connection out of SQLAlchemy's async
    pool and back costs more CPU than a PostgreSQL round trip (greenlet switches, pool events);
    in process, a refresh ran at 0.78x the throughput it reaches on this pool. No connection is
    made until the first refresh."""
    import asyncpg

    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    return await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=size,
        max_inactive_connection_lifetime=ROTATION_POOL_IDLE,
        reset=_keep_session_state,
    )


def _record(row: tuple[Any, ...]) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        id=row[0],
        token_hash=row[1],
        scope=row[2],
        created_at=_utc(row[3]),
        used_at=_utc(row[4]),
        grace_response=row[5],
        session=SessionRecord(
            id=row[6],
            user_id=row[7],
            client_id=row[8],
            scope=row[9],
            created_at=_utc(row[10]),
            expires_at=_utc(row[11]),
            ended_at=_utc(row[12]),
            authentication=Authentication.stored(_utc(row[13]), row[14], row[15]),
        ),
    )


def _utc(value: dt.datetime | None) -> Any:
    """Timestamps as UTCDateTime gives them: aware, in UTC (SQLite hands back naive ones)."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class RefreshTokenRepository:
    async def find(self, db: AsyncSession, token: str) -> RefreshTokenRecord | None:
        """The token (by its hash) with its session, or None for anything unknown or malformed."""
        if not token or len(token) > MAX_REFRESH_TOKEN_LENGTH:
            return None
        row = (
            await db.execute(
                select(*_COLUMNS)
                .join(LoginSession, LoginSession.id == RefreshToken.session_id)
                .where(RefreshToken.token_hash == hash_refresh_token(token))
            )
        ).one_or_none()
        return None if row is None else _record(tuple(row))

    async def add(
        self,
        db: AsyncSession,
        *,
        session_id: str,
        scope: str,
        now: dt.datetime,
        expires_at: dt.datetime,
        parent_id: int | None = None,
    ) -> str:
        """A new refresh token of the session; returns the token (only its hash is stored)."""
        token = new_refresh_token()
        await db.execute(
            insert(RefreshToken).values(
                token_hash=hash_refresh_token(token),
                session_id=session_id,
                parent_id=parent_id,
                scope=scope,
                created_at=now,
                expires_at=expires_at,
            )
        )
        return token

    async def claim(self, db: AsyncSession, token_id: int, now: dt.datetime) -> bool:
        """Mark the token used, if nobody has: of racing requests exactly one gets True (the
        conditional UPDATE waits for a concurrent winner's commit, then matches nothing)."""
        result = await db.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def store_answer(self, db: AsyncSession, token_id: int, sealed: bytes) -> None:
        """Keep the (encrypted) answer of a rotation for the reuse grace window."""
        await db.execute(
            update(RefreshToken).where(RefreshToken.id == token_id).values(grace_response=sealed)
        )

    async def child_used(self, db: AsyncSession, token_id: int) -> bool:
        """Whether the token that replaced this one has itself been used."""
        return bool(
            await db.scalar(
                select(
                    exists().where(
                        RefreshToken.parent_id == token_id, RefreshToken.used_at.is_not(None)
                    )
                )
            )
        )

    async def answer(self, db: AsyncSession, token_id: int) -> bytes | None:
        return await db.scalar(
            select(RefreshToken.grace_response).where(RefreshToken.id == token_id)
        )


__all__ = [
    "MAX_REFRESH_TOKEN_LENGTH",
    "PostgresRotation",
    "RefreshTokenRecord",
    "RefreshTokenRepository",
    "SessionRecord",
    "hash_refresh_token",
    "new_refresh_token",
    "open_rotation_pool",
]
