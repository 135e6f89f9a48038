"""Issue 16 item 3: no password hash runs inside a transaction or while a pooled connection is
held, on any route (sign-up, login, password change, a legacy client secret) nor in the command
line; and a password change checks its policy, which needs no hash, first.

The review: password change hashed once or twice while the request's transaction held SQLite's
write lock (another user's /users/me went from 12 ms to seconds, then 503 "database is
locked"). The probe wraps the Argon2 calls themselves, in the hashing threads: while each runs,
no connection of the server's engines may be checked out, and on SQLite another writer must be
able to begin at once."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from auth_server.persistence.models import Client
from auth_server.settings import AuthSettings
from auth_server.users.passwords import PasswordHasher
from tests.integration.auth.conftest import PASSWORD, login, register
from tests.integration.sessions.conftest import bearer, running_app


class HashProbe:
    """Records every Argon2 call of the hashers it is installed on, and what was held while it
    ran (`violations`)."""

    def __init__(self, database_url: str) -> None:
        self.sqlite_path = (
            database_url.split("///", 1)[1] if database_url.startswith("sqlite") else None
        )
        self.engines: list[AsyncEngine] = []
        self.calls: list[str] = []
        self.violations: list[str] = []

    def install(self, hasher: PasswordHasher) -> None:
        argon2 = hasher._hash
        for name in ("hash", "verify", "verify_and_update"):
            setattr(argon2, name, self._probed(name, getattr(argon2, name)))

    def _probed(self, name: str, call: Any) -> Any:
        def probed(*args: Any) -> Any:
            self._check(name)
            return call(*args)

        return probed

    def _check(self, name: str) -> None:
        self.calls.append(name)
        where = f"#{len(self.calls)} {name}"
        for engine in self.engines:
            if engine.pool.checkedout():  # type: ignore[attr-defined]
                self.violations.append(f"{where}: a pooled connection is held ({engine.url})")
        if self.sqlite_path is not None:
            other = sqlite3.connect(self.sqlite_path, timeout=0)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
            except sqlite3.OperationalError as exc:
                self.violations.append(f"{where}: another writer is blocked ({exc})")
            finally:
                other.close()


@pytest.fixture
def quiet_settings(auth_settings: AuthSettings, monkeypatch: pytest.MonkeyPatch) -> AuthSettings:
    """No background work that the probe could mistake for a request's: no schedules (the key
    rotation's first check runs at start), no key cache reloads (every 2 s)."""
    import auth_server.main

    async def no_schedules(_state: Any) -> Callable[[], Awaitable[None]]:
        async def stop() -> None:
            pass

        return stop

    monkeypatch.setattr(auth_server.main, "start_schedules", no_schedules)
    return auth_settings.model_copy(update={"key_cache_refresh_interval": 3600.0})


async def test_no_route_hashes_a_password_inside_a_transaction(
    quiet_settings: AuthSettings,
) -> None:
    async with running_app(quiet_settings) as client:
        state = client.app.state.auth  # type: ignore[attr-defined]
        probe = HashProbe(quiet_settings.database_url)
        probe.install(state.passwords)
        probe.engines.append(state.engine)
        counter_engine = getattr(state.throttle._counter.store, "_engine", None)
        if counter_engine is not None and counter_engine is not state.engine:
            probe.engines.append(counter_engine)  # PostgreSQL: the counters' own pool

        user = await register(client, "hashed")  # sign-up: a hash
        assert (await login(client, "hashed", password="wrong password 1")).status_code == 400
        assert (await login(client, "nobody-here", password="wrong password 1")).status_code == 400
        token = (await login(client, "hashed")).json()["access_token"]

        async def change(current: str, new: str) -> httpx.Response:
            body = {"current_password": current, "new_password": new}
            return await client.post("/users/me/password", json=body, headers=bearer(token))

        assert (await change("not the password", "another long passphrase")).status_code == 403
        assert (await change(PASSWORD, "another long passphrase")).status_code == 204
        assert (await login(client, user["email"], "another long passphrase")).status_code == 200

        # A confidential client whose secret an earlier release stored with Argon2.
        from auth_server.oauth.clients import create_client
        from shared.service.db import transaction

        async with transaction(state.session_maker) as db:
            _, secret = await create_client(
                db, client_id="legacy", confidential=True, grant_types=[], scopes=["notes:read"]
            )
        assert secret is not None
        legacy_hash = await state.passwords.hash(secret)  # (no transaction here either)
        async with transaction(state.session_maker) as db:
            await db.execute(
                update(Client).where(Client.id == "legacy").values(secret_hash=legacy_hash)
            )
        introspected = await client.post(
            "/introspect", data={"token": "x"}, auth=("legacy", secret)
        )
        assert introspected.status_code == 200, introspected.text

    assert probe.violations == [], (probe.calls, probe.violations)
    # Every path above hashed: sign-up, three logins, two current passwords, the new password,
    # the login with it, the legacy secret made and checked.
    assert len(probe.calls) == 10, probe.calls


async def test_a_weak_new_password_is_refused_before_any_hash_or_count(
    quiet_settings: AuthSettings,
) -> None:
    """The review: a right current password with a weak new one was a 422 that the throttle
    refunded, after one hash: never limited. The policy needs no hash, so it comes first."""
    settings = quiet_settings.model_copy(update={"login_failure_limit": 2})
    async with running_app(settings) as client:
        state = client.app.state.auth  # type: ignore[attr-defined]
        await register(client, "weakling")
        token = (await login(client, "weakling")).json()["access_token"]
        probe = HashProbe(settings.database_url)
        probe.install(state.passwords)
        for current in (PASSWORD, "a wrong guess 1", "a wrong guess 2", "a wrong guess 3"):
            body = {"current_password": current, "new_password": "password123"}
            weak = await client.post("/users/me/password", json=body, headers=bearer(token))
            assert weak.status_code == 422, weak.text
        assert probe.calls == []
        # Nothing was counted either: the two wrong passwords the limit allows are still there.
        for current in ("a wrong guess 1", "a wrong guess 2"):
            body = {"current_password": current, "new_password": "a fine new passphrase"}
            wrong = await client.post("/users/me/password", json=body, headers=bearer(token))
            assert wrong.status_code == 403


async def test_the_command_line_hashes_outside_its_transaction(
    auth_settings: AuthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import auth_server.cli as cli

    probe = HashProbe(auth_settings.database_url)
    made = cli.create_engine

    def watched_engine(*args: Any, **kwargs: Any) -> AsyncEngine:
        engine = made(*args, **kwargs)
        probe.engines.append(engine)
        return engine

    class ProbedHasher(PasswordHasher):
        def __init__(self, settings: AuthSettings) -> None:
            super().__init__(settings)
            probe.install(self)

    monkeypatch.setattr(cli, "create_engine", watched_engine)
    monkeypatch.setattr(cli, "PasswordHasher", ProbedHasher)
    for name, value in {
        "AUTH_DATABASE_URL": auth_settings.database_url,
        "AUTH_KEY_ENCRYPTION_KEY": auth_settings.key_encryption_key.get_secret_value(),
        "AUTH_ENVIRONMENT": "test",
        "AUTH_VAR_DIR": str(auth_settings.var_dir),
        "AUTH_PASSWORD_HASH_MEMORY_COST": "1024",
        "AUTH_PASSWORD_HASH_TIME_COST": "1",
        "AUTH_PASSWORD_HASH_PARALLELISM": "1",
    }.items():
        monkeypatch.setenv(name, value)
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli.app,
        ["users", "create", "from-cli", "--email", "from-cli@example.com"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert probe.calls == ["hash"] and probe.violations == []


async def test_of_two_password_changes_at_once_one_wins_and_the_other_is_409(
    quiet_settings: AuthSettings,
) -> None:
    """Hashing outside the transaction opens a window between the check of the current
    password and the write of the new one: the write is conditional on the hash that was
    checked, so a change that lost the race is refused, never applied over the winner's."""
    settings = quiet_settings.model_copy(update={"password_hash_concurrency": 2})
    async with running_app(settings) as client:
        state = client.app.state.auth  # type: ignore[attr-defined]
        await register(client, "racer")
        token = (await login(client, "racer")).json()["access_token"]
        argon2 = state.passwords._hash
        hash_ = argon2.hash
        both_checked = threading.Barrier(2, timeout=30)

        def after_both(password: str) -> str:
            both_checked.wait()  # both current passwords were right before either writes
            return str(hash_(password))

        argon2.hash = after_both
        try:
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/users/me/password",
                        json={"current_password": PASSWORD, "new_password": new},
                        headers=bearer(token),
                    )
                    for new in ("first new passphrase", "second new passphrase")
                )
            )
        finally:
            argon2.hash = hash_
        assert sorted(a.status_code for a in answers) == [204, 409], [a.text for a in answers]
        winner = (
            "first new passphrase" if answers[0].status_code == 204 else "second new passphrase"
        )
        assert (await login(client, "racer", winner)).status_code == 200
