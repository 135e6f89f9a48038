"""Async SQLAlchemy for both services: engines, one transaction per unit of work, Alembic.

A unit of work (a request, a CLI command, a background pass) runs inside `transaction()`: the
services it calls only flush, and the transaction commits once, at the end. Work that must happen
only after the commit (publishing an event on Redis, say) is registered with `after_commit`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

log = logging.getLogger("shared.service.db")

AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT = "notes_auth.after_commit"

# Constraint names are deterministic so that migrations can refer to them (Alembic docs).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite drops the zone, PostgreSQL keeps it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
        return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


def _ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """Build the async engine; SQLite gets WAL, foreign keys and a busy timeout."""
    _ensure_sqlite_dir(url)
    # hide_parameters: an error's message never carries the statement's values (note text,
    # client ids, hashes) into a log.
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    is_sqlite = make_url(url).get_backend_name() == "sqlite"
    if is_sqlite:
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = pool_size
    engine = create_async_engine(url, **kwargs)
    if not is_sqlite:
        # Not pool_pre_ping: on asyncpg it is three round trips (BEGIN, ";", ROLLBACK) before
        # every checkout, a third of a refresh grant's database time. asyncpg learns that the
        # server closed a connection from its socket (a restart, pg_terminate_backend), so a
        # closed one is replaced here with no round trip (SQLAlchemy docs, "Disconnect
        # Handling - Pessimistic": DisconnectionError makes the pool retry with a new one). A
        # connection that dies silently fails its request with a 503, and SQLAlchemy then
        # invalidates the whole pool.
        @event.listens_for(engine.sync_engine, "checkout")
        def _replace_closed(_dbapi: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
            is_closed = getattr(record.driver_connection, "is_closed", None)
            if is_closed is not None and is_closed():
                raise sa_exc.DisconnectionError("the server closed this pooled connection")

    if is_sqlite:

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        # pysqlite's default transaction handling defers BEGIN, which lets two writers read the
        # same row before either writes. BEGIN IMMEDIATE takes the write lock up front, which is
        # what makes our conditional updates atomic on SQLite (SQLAlchemy docs, "Serializable
        # isolation / Savepoints / Transactional DDL" for pysqlite).
        @event.listens_for(engine.sync_engine, "connect")
        def _no_implicit_begin(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def after_commit(db: AsyncSession, action: AfterCommit) -> None:
    """Run `action` once `db`'s transaction has committed; it is dropped if it rolls back."""
    db.info.setdefault(_AFTER_COMMIT, []).append(action)


async def _commit(db: AsyncSession) -> None:
    # A unit of work that never began (it read nothing through the session and added nothing:
    # a refresh on PostgreSQL, whose statements run on a pool of their own) has nothing to
    # commit; SQLAlchemy would still begin and commit an empty session transaction.
    if db.in_transaction():
        await db.commit()
    for action in db.info.pop(_AFTER_COMMIT, []):
        try:
            await action()
        except Exception:  # the commit stands; an after-commit action is best effort
            log.exception("an after-commit action failed")


async def _rollback(db: AsyncSession) -> None:
    db.info.pop(_AFTER_COMMIT, None)
    await db.rollback()


async def checkpoint(db: AsyncSession) -> None:
    """Commit the unit of work so far, and run its after-commit actions, before slow work that
    needs no database: the connection goes back to the pool (and SQLite's write lock is let go)
    instead of being held through it. The unit of work continues in a new transaction."""
    await _commit(db)


@asynccontextmanager
async def transaction(
    session_maker: async_sessionmaker[AsyncSession],
    *,
    commit_on: tuple[type[BaseException], ...] = (),
) -> AsyncIterator[AsyncSession]:
    """One unit of work. It commits when the block ends normally, or with one of `commit_on`
    (errors that are answers the code chose to give, whose writes, such as an audit record,
    must stay), and rolls back on anything else."""
    async with session_maker() as db:
        try:
            yield db
        except commit_on:
            await _commit(db)
            raise
        except BaseException:
            await _rollback(db)
            raise
        else:
            await _commit(db)


def alembic_upgrade(script_location: Path, url: str, revision: str = "head") -> None:
    """Run `alembic upgrade` programmatically (blocking: call it from a thread inside async code)."""
    _ensure_sqlite_dir(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["database_url"] = url
    command.upgrade(cfg, revision)


__all__ = [
    "NAMING_CONVENTION",
    "AfterCommit",
    "UTCDateTime",
    "after_commit",
    "alembic_upgrade",
    "checkpoint",
    "create_engine",
    "create_session_maker",
    "make_metadata",
    "transaction",
    "utcnow",
]
