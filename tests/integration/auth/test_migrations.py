"""Migrations that meet data written by earlier releases: each runs from the revision before it,
on SQLite and PostgreSQL, and says what it found in the log."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from auth_server.persistence.database import MIGRATIONS
from shared.service.db import alembic_upgrade
from tests.databases import PostgresDatabases, run_sync

Migrate = Callable[[str], None]


@pytest.fixture
def old_database(db_backend: str, tmp_path: Path, pg_databases: PostgresDatabases) -> str:
    """An empty database, on the test's backend, for a migration test to build up."""
    if db_backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'old-auth.db'}"
    return pg_databases.empty("old_auth")


def upgrade(url: str, revision: str = "head") -> None:
    alembic_upgrade(MIGRATIONS, url, revision)


def execute(url: str, *statements: tuple[str, dict[str, object]]) -> list[list[tuple[object, ...]]]:
    """Run statements in one transaction (rows of each, if it returns any)."""
    from shared.service.db import create_engine

    async def run() -> list[list[tuple[object, ...]]]:
        engine = create_engine(url)
        results = []
        try:
            async with engine.begin() as conn:
                for statement, params in statements:
                    result = await conn.execute(sa.text(statement), params)
                    results.append([tuple(r) for r in result.all()] if result.returns_rows else [])
        finally:
            await engine.dispose()
        return results

    return run_sync(run)


def test_duplicate_feed_rows_of_one_jti_are_merged_into_the_first(
    old_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade(old_database, "0005")
    now = dt.datetime.now(dt.UTC)
    rows = [
        ("jti", "j1", 0),
        ("jti", "j1", 30),
        ("sid", "s1", 0),
        ("jti", "j1", 60),
        ("jti", "j2", 0),
    ]
    execute(
        old_database,
        *(
            (
                "INSERT INTO revocations (kind, value, created_at, expires_at) "
                "VALUES (:kind, :value, :now, :expires)",
                {"kind": k, "value": v, "now": now, "expires": now + dt.timedelta(seconds=600 + s)},
            )
            for k, v, s in rows
        ),
    )
    with caplog.at_level(logging.WARNING):
        upgrade(old_database)
    [left] = execute(
        old_database, ("SELECT id, kind, value, expires_at FROM revocations ORDER BY id", {})
    )
    assert [(kind, value) for _, kind, value, _ in left] == [
        ("jti", "j1"),
        ("sid", "s1"),
        ("jti", "j2"),
    ]
    assert left[0][0] == 1  # the earliest row stays, with the latest expiry of its copies
    latest = (
        left[0][3]
        if isinstance(left[0][3], dt.datetime)
        else dt.datetime.fromisoformat(str(left[0][3]))
    )
    assert abs(latest.replace(tzinfo=dt.UTC).timestamp() - (now.timestamp() + 660)) < 1
    assert "merged 2 duplicate feed rows of 1 revoked access tokens" in caplog.text


async def test_login_names_that_already_collide_are_reported_and_no_user_is_changed(
    old_database: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Issue 16 item 2: accounts that earlier releases let share a login string. The migration
    still succeeds; it changes no user, gives each shared name to one account (an email before a
    username, then the oldest account), and logs how many names were shared and whose."""
    import httpx
    import jwt

    from auth_server.main import create_app
    from auth_server.settings import AuthSettings
    from auth_server.users.passwords import PasswordHasher
    from tests.conftest import FAST_HASHING
    from tests.databases import TEST_KEK, migrate_auth

    settings = AuthSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=old_database,
        key_encryption_key=TEST_KEK,
        var_dir=tmp_path / "var",
        **FAST_HASHING,
    )
    hasher = PasswordHasher(settings)
    await asyncio.to_thread(upgrade, old_database, "0006")
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    # (id, username, email, password, day created): c's username is b's email (c came later);
    # e's fullwidth email is d's email in canonical form (e came later); a's username looks like
    # an email, nobody else's.
    accounts = [
        (
            "00000000-0000-0000-0000-00000000000a",
            "attacker@mail.example",
            "a@mail.example",
            "attacker pass 1",
            2,
        ),
        (
            "00000000-0000-0000-0000-00000000000b",
            "victim",
            "victim@mail.example",
            "victim pass 123",
            1,
        ),
        (
            "00000000-0000-0000-0000-00000000000c",
            "victim@mail.example",
            "c@mail.example",
            "squatter pass 1",
            3,
        ),
        ("00000000-0000-0000-0000-00000000000d", "bob", "Bob@mail.example", "bob's passphrase", 4),
        (
            "00000000-0000-0000-0000-00000000000e",
            "carol",
            "\uff42ob@mail.example",
            "carol passphrase",
            5,
        ),
    ]
    statements = []
    for user_id, username, email, password, day in accounts:
        statements.append(
            (
                "INSERT INTO users (id, username, email, email_normalized, password_hash, "
                "is_admin, created_at) VALUES (:id, :username, :email, :key, :hash, false, :at)",
                {
                    "id": user_id,
                    "username": username,
                    "email": email,
                    "key": email.casefold(),
                    "hash": await hasher.hash(password),
                    "at": start + dt.timedelta(days=day),
                },
            )
        )
    hasher.close()
    await asyncio.to_thread(execute, old_database, *statements)
    users_query = ("SELECT * FROM users ORDER BY id", {})
    [before] = await asyncio.to_thread(execute, old_database, users_query)

    with caplog.at_level(logging.WARNING):
        await asyncio.to_thread(migrate_auth, old_database)  # head, the seeded clients, keys

    [after] = await asyncio.to_thread(execute, old_database, users_query)
    assert after == before
    warning = next(
        r.getMessage() for r in caplog.records if "login names were shared" in r.getMessage()
    )
    assert warning.startswith("2 login names were shared by more than one account (4 accounts:")
    for user_id in ("b", "c", "d", "e"):
        assert f"0000000000{user_id}" in warning
    assert "00000000000a" not in warning
    assert "00000000-0000-0000-0000-00000000000b -> 00000000-0000-0000-0000-00000000000c" in warning
    assert "00000000-0000-0000-0000-00000000000d -> 00000000-0000-0000-0000-00000000000e" in warning

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def who(login: str, password: str) -> str | None:
                form = {"grant_type": "password", "client_id": "web"}
                answer = await client.post(
                    "/token", data=form | {"username": login, "password": password}
                )
                if answer.status_code != 200:
                    return None
                claims = jwt.decode(
                    answer.json()["access_token"], options={"verify_signature": False}
                )
                return str(claims["sub"])[-1]

            # The shared email names the account whose email it is, never the squatter.
            assert await who("victim@mail.example", "victim pass 123") == "b"
            assert await who("Victim@Mail.Example", "squatter pass 1") is None
            assert await who("c@mail.example", "squatter pass 1") == "c"  # its other name
            # Two emails one in canonical form: the older account keeps it.
            assert await who("bob@mail.example", "bob's passphrase") == "d"
            assert await who("\uff42ob@mail.example", "carol passphrase") is None
            assert await who("carol", "carol passphrase") == "e"
            assert await who("attacker@mail.example", "attacker pass 1") == "a"
