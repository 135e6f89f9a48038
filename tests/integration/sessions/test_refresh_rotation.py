"""RFC 6749 §6 refresh with rotation, the reuse grace window and theft detection (RFC 9700 §4.14)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
from sqlalchemy import select, text, update

from auth_server.persistence.models import AuditEvent, LoginSession, RefreshToken
from tests.integration.sessions.conftest import AppFactory, bearer, login, refresh, register


async def test_each_refresh_rotates_the_refresh_token(
    auth_client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    first = await refresh(auth_client, user_tokens["refresh_token"])
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["refresh_token"] != user_tokens["refresh_token"]
    assert body["token_type"] == "Bearer" and body["scope"] == "notes:read notes:write"
    assert first.headers["Cache-Control"] == "no-store"
    second = await refresh(auth_client, body["refresh_token"])
    assert second.status_code == 200
    assert second.json()["refresh_token"] not in (
        body["refresh_token"],
        user_tokens["refresh_token"],
    )
    me = await auth_client.get("/users/me", headers=bearer(second.json()["access_token"]))
    assert me.status_code == 200


async def test_grace_window_gives_eight_parallel_replays_the_identical_pair(
    auth_client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    responses = await asyncio.gather(
        *(refresh(auth_client, user_tokens["refresh_token"]) for _ in range(8))
    )
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    pairs = {(r.json()["access_token"], r.json()["refresh_token"]) for r in responses}
    assert len(pairs) == 1
    # The pair is live: the session was not ended by the replays.
    ((_, new_refresh),) = pairs
    assert (await refresh(auth_client, new_refresh)).status_code == 200


async def test_grandparent_token_inside_the_window_ends_the_session(
    auth_client: httpx.AsyncClient, user_tokens: dict[str, Any], db: Any
) -> None:
    child = (await refresh(auth_client, user_tokens["refresh_token"])).json()
    grandchild = (await refresh(auth_client, child["refresh_token"])).json()
    replay = await refresh(auth_client, user_tokens["refresh_token"])  # the grandparent
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    # Theft: the whole session is over, even for the newest token and its access token.
    assert (await refresh(auth_client, grandchild["refresh_token"])).status_code == 400
    me = await auth_client.get("/users/me", headers=bearer(grandchild["access_token"]))
    assert me.status_code == 401
    events = (await db.scalars(select(AuditEvent.type))).all()
    assert "refresh_reuse" in events


async def test_reuse_after_the_window_ends_the_session(
    auth_client: httpx.AsyncClient, user_tokens: dict[str, Any], db: Any
) -> None:
    child = (await refresh(auth_client, user_tokens["refresh_token"])).json()
    # Move the rotation back past the 10 s grace window.
    await db.execute(
        update(RefreshToken)
        .where(RefreshToken.used_at.is_not(None))
        .values(used_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30))
    )
    await db.commit()
    late = await refresh(auth_client, user_tokens["refresh_token"])
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
    assert (await refresh(auth_client, child["refresh_token"])).status_code == 400
    session = (
        await db.scalars(select(LoginSession).execution_options(populate_existing=True))
    ).one()
    assert session.ended_at is not None and session.end_reason == "refresh_token_reuse"


async def test_refresh_may_narrow_the_scope_but_never_widen_it(
    auth_client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    narrowed = await refresh(auth_client, user_tokens["refresh_token"], scope="notes:read")
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "notes:read"
    widened = await refresh(
        auth_client, narrowed.json()["refresh_token"], scope="notes:read notes:write"
    )
    assert widened.status_code == 400 and widened.json()["error"] == "invalid_scope"


async def test_unknown_missing_and_foreign_refresh_tokens_are_refused(
    auth_client: httpx.AsyncClient, user_tokens: dict[str, Any], auth_app: Any
) -> None:
    unknown = await refresh(auth_client, "not-a-real-token")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"
    missing = await auth_client.post(
        "/token", data={"grant_type": "refresh_token", "client_id": "web"}
    )
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    from auth_server.oauth.clients import create_client
    from shared.service.db import transaction

    state = auth_app.state.auth
    async with transaction(state.session_maker) as session:
        await create_client(
            session,
            client_id="other-app",
            confidential=False,
            grant_types=["password", "refresh_token"],
            scopes=[],
        )
    foreign = await refresh(auth_client, user_tokens["refresh_token"], client_id="other-app")
    assert foreign.status_code == 400 and foreign.json()["error"] == "invalid_grant"


async def test_refresh_tokens_are_stored_only_as_hashes(
    auth_client: httpx.AsyncClient, user_tokens: dict[str, Any], db: Any
) -> None:
    rotated = (await refresh(auth_client, user_tokens["refresh_token"])).json()
    for table in ("refresh_tokens", "sessions", "audit_events"):
        rows = (await db.execute(text(f"SELECT * FROM {table}"))).all()
        dump = repr(rows)
        for secret in (
            user_tokens["refresh_token"],
            rotated["refresh_token"],
            rotated["access_token"],
        ):
            assert secret not in dump, table


async def test_an_ended_session_cannot_refresh(app_with: AppFactory) -> None:
    async with app_with() as client:
        user = await register(client)
        tokens = (await login(client, user["username"])).json()
        assert (
            await client.delete("/sessions", headers=bearer(tokens["access_token"]))
        ).status_code == 204
        assert (await refresh(client, tokens["refresh_token"])).status_code == 400
