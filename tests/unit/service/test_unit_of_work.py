"""`transaction`: a unit of work that never touched the database commits nothing (a refresh on
PostgreSQL runs its statements on a pool of its own), and its after-commit actions still run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from shared.service.db import after_commit, create_engine, create_session_maker, transaction


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'unit.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    yield engine
    await engine.dispose()


@pytest.fixture
def commits() -> Iterator[list[str]]:
    seen: list[str] = []

    def committed(_session: Session) -> None:
        seen.append("commit")

    event.listen(Session, "after_commit", committed)
    yield seen
    event.remove(Session, "after_commit", committed)


async def test_a_unit_of_work_that_never_began_commits_nothing(
    engine: AsyncEngine, commits: list[str]
) -> None:
    ran: list[str] = []

    async def action() -> None:
        ran.append("after commit")

    async with transaction(create_session_maker(engine)) as db:
        after_commit(db, action)
        assert not db.in_transaction()
    assert commits == []
    assert ran == ["after commit"]


async def test_a_unit_of_work_that_wrote_commits_it(
    engine: AsyncEngine, commits: list[str]
) -> None:
    maker = create_session_maker(engine)
    async with transaction(maker) as db:
        await db.execute(text("INSERT INTO t (id) VALUES (1)"))
    assert commits == ["commit"]
    async with transaction(maker) as db:
        count: Any = await db.scalar(text("SELECT count(*) FROM t"))
    assert count == 1
