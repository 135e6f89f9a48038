"""Issue 8 at the auth server: the grace window is bound to the party that rotated, refresh and
revoke are limited per session, a relay may name the session it expects, and an emergency key
rotation is used at once by a running server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select

from auth_server.main import create_app
from auth_server.persistence.models import AuditEvent, LoginSession
from auth_server.revocations import RevocationPublisher
from auth_server.settings import AuthSettings
from auth_server.state import build_key_store
from shared.service.db import create_engine, create_session_maker
from tests.integration.sessions.conftest import (
    AppFactory,
    Clock,
    bearer,
    login,
    refresh,
    register,
)


@pytest.fixture
async def two_clients(auth_app: Any) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two parties on the same app: 127.0.0.1 and 10.9.8.7."""
    clients = []
    for address in ("127.0.0.1", "10.9.8.7"):
        transport = httpx.ASGITransport(app=auth_app, client=(address, 50000))
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000"))
    try:
        yield clients[0], clients[1]
    finally:
        for client in clients:
            await client.aclose()


async def _session_ended(db: Any) -> str | None:
    session = (
        await db.scalars(select(LoginSession).execution_options(populate_existing=True))
    ).one()
    reason = session.end_reason if session.ended_at is not None else None
    await db.rollback()  # end the read: on SQLite an open transaction holds the write lock
    return reason


async def test_a_replay_in_the_grace_window_from_the_same_party_gets_the_same_pair(
    auth_client: httpx.AsyncClient, user_tokens: dict[str, Any], db: Any
) -> None:
    ua = {"User-Agent": "Browser/1.0"}
    first = await auth_client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": user_tokens["refresh_token"]}
        | {"client_id": "web"},
        headers=ua,
    )
    again = await auth_client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": user_tokens["refresh_token"]}
        | {"client_id": "web"},
        headers=ua,
    )
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert await _session_ended(db) is None


async def test_a_replay_in_the_grace_window_from_another_user_agent_is_reuse(
    auth_client: httpx.AsyncClient, user_tokens: dict[str, Any], db: Any
) -> None:
    def form(token: str) -> dict[str, str]:
        return {"grant_type": "refresh_token", "refresh_token": token, "client_id": "web"}

    first = await auth_client.post(
        "/token", data=form(user_tokens["refresh_token"]), headers={"User-Agent": "Browser/1.0"}
    )
    assert first.status_code == 200
    stolen = await auth_client.post(
        "/token", data=form(user_tokens["refresh_token"]), headers={"User-Agent": "curl/8.0"}
    )
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert "refresh_token" not in stolen.json()
    assert await _session_ended(db) == "refresh_token_reuse"
    # The pair the rightful client got is dead too: the session is over.
    assert (await refresh(auth_client, first.json()["refresh_token"])).status_code == 400
    types = (await db.scalars(select(AuditEvent.type))).all()
    await db.rollback()
    assert "refresh_reuse" in types and "refresh_grace_replay" not in types


async def test_a_replay_in_the_grace_window_from_another_address_is_reuse(
    two_clients: tuple[httpx.AsyncClient, httpx.AsyncClient], db: Any
) -> None:
    home, elsewhere = two_clients
    user = await register(home)
    tokens = (await login(home, user["username"])).json()
    assert (await refresh(home, tokens["refresh_token"])).status_code == 200
    replay = await refresh(elsewhere, tokens["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert await _session_ended(db) == "refresh_token_reuse"


async def test_refresh_and_revoke_are_limited_per_session(
    app_with: AppFactory, auth_settings: AuthSettings
) -> None:
    async with app_with(session_rate_limit=3) as client:
        user = await register(client)
        tokens = (await login(client, user["username"])).json()
        token = tokens["refresh_token"]
        for _ in range(3):
            response = await refresh(client, token)
            assert response.status_code == 200, response.text
            token = response.json()["refresh_token"]
        limited = await refresh(client, token)
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["Cache-Control"] == "no-store"
        # Refused before any work: the token was not spent, and the session is alive.
        revoke = await client.post("/revoke", data={"token": token, "client_id": "web"})
        assert revoke.status_code == 429
        # Another session of the same user has its own budget.
        other = (await login(client, user["username"])).json()
        assert (await refresh(client, other["refresh_token"])).status_code == 200


async def test_a_relay_naming_another_session_is_refused_without_spending_the_token(
    auth_client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    """A resource server relaying a transparent refresh names the expired token's session: a
    refresh token of another session is refused, and stays the victim's."""
    victim_sid = jwt.decode(user_tokens["access_token"], options={"verify_signature": False})["sid"]
    refused = await refresh(auth_client, user_tokens["refresh_token"], sid="someone-elses-session")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    unknown = await refresh(auth_client, "not-a-token", sid=victim_sid)
    assert refused.json() == unknown.json()  # one answer: nothing tells the token is good
    accepted = await refresh(auth_client, user_tokens["refresh_token"], sid=victim_sid)
    assert accepted.status_code == 200  # not spent by the refused attempt


async def test_an_emergency_rotation_is_used_at_once_by_a_running_server(
    auth_app: Any, auth_client: httpx.AsyncClient, auth_settings: AuthSettings
) -> None:
    """What `keys rotate --emergency` does from another process: the running server must not
    sign with the retired key, not even once (no Redis here: the signing path checks)."""
    user = await register(auth_client)
    before = (await login(auth_client, user["username"])).json()
    retired = jwt.get_unverified_header(before["access_token"])["kid"]
    engine = create_engine(auth_settings.database_url)
    try:
        cli_store = build_key_store(
            auth_settings, create_session_maker(engine), RevocationPublisher(None, "unused")
        )
        result = await cli_store.rotate(emergency=True)
    finally:
        await engine.dispose()
    assert result.previous_kid == retired
    after = await login(auth_client, user["username"])
    assert after.status_code == 200
    assert jwt.get_unverified_header(after.json()["access_token"])["kid"] == result.active_kid
    renewed = await refresh(auth_client, after.json()["refresh_token"])
    assert jwt.get_unverified_header(renewed.json()["access_token"])["kid"] == result.active_kid
    # The running server's own endpoints refuse the retired key's token right away, too.
    me = await auth_client.get("/users/me", headers=bearer(before["access_token"]))
    assert me.status_code == 401


async def test_a_rotation_reaches_a_running_server_through_redis(
    auth_settings: AuthSettings, redis_url: str, redis_prefix: str
) -> None:
    settings = auth_settings.model_copy(
        update={"redis_url": redis_url, "redis_prefix": redis_prefix}
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state = app.state.auth
        for _ in range(50):  # the subscription is up
            if state.keys.push_connected:
                break
            await asyncio.sleep(0.05)
        assert state.keys.push_connected
        old = (await state.keys.signing_key()).kid
        cli_state = build_key_store(
            settings,
            state.session_maker,
            RevocationPublisher(state.redis, "unused"),
        )
        cli_state.on_keys_changed = state.keys.on_keys_changed  # the CLI publishes the same way
        result = await cli_state.rotate(emergency=True)
        for _ in range(50):
            if (await state.keys.signing_key()).kid != old:
                break
            await asyncio.sleep(0.02)
        assert (await state.keys.signing_key()).kid == result.active_kid
        assert await state.keys.get_key(old) is None


async def test_a_crowd_of_refreshes_when_the_client_cache_expires_never_deadlocks_the_pool(
    app_with: AppFactory,
) -> None:
    """More refreshes at once than the pool has connections (20 on PostgreSQL), just as the
    cached client record expires: each reads the client in its request's transaction. The
    rotation must not then wait for a second connection from the same pool (the benchmark saw
    every request wait out the pool timeout, then 503)."""
    clock = Clock()
    async with app_with(
        clock=clock, login_ip_limit=1000, login_account_limit=1000, client_rate_limit=1000
    ) as client:
        await register(client, "crowd")
        tokens = []
        for _ in range(26):
            response = await login(client, "crowd")
            assert response.status_code == 200, response.text
            tokens.append(response.json()["refresh_token"])
        clock.advance(11)  # the client directory's records are 10 s old: every request reads
        answers = await asyncio.wait_for(
            asyncio.gather(*(refresh(client, token) for token in tokens)), timeout=20
        )
    assert [a.status_code for a in answers] == [200] * len(tokens)
