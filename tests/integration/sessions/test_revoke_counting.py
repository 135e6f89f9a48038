"""Issue 16, item 1: what POST /revoke counts and writes (contract §7, AUTH_SESSION_RATE_LIMIT).

Revoking an access token counts only per client and address, never against its session: nobody
without the refresh token can use up a session's refresh limit. Revoking one that is already
revoked or expired counts nothing and writes nothing (no feed row, no audit row), and one `jti`
gets at most one feed row, even when revocations race. Run on SQLite and PostgreSQL, with the
flood limits in memory and on Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from auth_server.persistence.models import AuditEvent, Revocation
from tests.databases import REDIS_URL
from tests.integration.sessions.conftest import AppFactory, Clock, login, refresh, register

STORAGES = ["memory", "redis"]


@pytest.fixture(params=STORAGES)
def limits_app(request: pytest.FixtureRequest, app_with: AppFactory, redis_prefix: str) -> Any:
    """`limits_app(clock, **settings)`: the auth app, its flood limits in memory or on Redis."""
    if request.param == "redis" and REDIS_URL is None:
        pytest.skip("TEST_REDIS_URL is not set")
    redis = (
        {"redis_url": REDIS_URL, "redis_prefix": redis_prefix} if request.param == "redis" else {}
    )

    def make(clock: Any = None, **changes: Any) -> Any:
        return app_with(clock or Clock(), **(redis | changes))

    return make


def from_address(client: httpx.AsyncClient, address: str) -> httpx.AsyncClient:
    """Another client of the same app, from another address."""
    app = client.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")


async def revoke(client: httpx.AsyncClient, token: str, **form: str) -> httpx.Response:
    return await client.post("/revoke", data={"token": token, "client_id": "web"} | form)


async def feed_and_audit(client: httpx.AsyncClient) -> tuple[list[str], int]:
    """The feed's `jti` values (every row, settled or not) and the number of revoke audit rows."""
    async with client.app.state.auth.session_maker() as db:  # type: ignore[attr-defined]
        jtis = (await db.scalars(select(Revocation.value).where(Revocation.kind == "jti"))).all()
        revokes = await db.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.type == "revoke")
        )
    return list(jtis), int(revokes or 0)


async def test_an_expired_access_token_revoked_again_and_again_blocks_no_refresh(
    limits_app: Any,
) -> None:
    """The review: 61 revocations of one expired token from another address gave 60 x 200, then
    429, and the victim's own refresh got 429 every minute for the session's 14 days."""
    clock = Clock()
    async with limits_app(clock, access_token_ttl=60, client_rate_limit=3) as victim:
        await register(victim, "victim")
        tokens = (await login(victim, "victim")).json()
        clock.advance(60 + 60 + 1)  # past its expiry and the verifiers' clock-skew margin
        async with from_address(victim, "203.0.113.66") as attacker:
            answers = [
                (await revoke(attacker, tokens["access_token"])).status_code for _ in range(61)
            ]
            assert answers == [200] * 61
            # Nothing was counted against the attacker's own client limit either (3 a minute).
            assert (await revoke(attacker, "an unknown token")).status_code == 200
        assert await feed_and_audit(victim) == ([], 0)
        refreshed = await refresh(victim, tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text


async def test_revoking_an_access_token_counts_per_client_and_address_never_per_session(
    limits_app: Any,
) -> None:
    async with limits_app(session_rate_limit=1, client_rate_limit=3) as client:
        await register(client, "owner")
        tokens = (await login(client, "owner")).json()
        first = await revoke(client, tokens["access_token"], token_type_hint="access_token")
        assert first.status_code == 200
        # Already revoked: counts nothing (the client's limit is 3) and writes nothing.
        for _ in range(5):
            assert (await revoke(client, tokens["access_token"])).status_code == 200
        jtis, revokes = await feed_and_audit(client)
        assert len(jtis) == 1 and revokes == 1
        # The session's one refresh a minute is untouched by the revocation (the refresh is the
        # client's second count).
        assert (await refresh(client, tokens["refresh_token"])).status_code == 200
        # The client's third count is left, for an unknown token; then its limit refuses.
        assert (await revoke(client, "not a token")).status_code == 200
        limited = await revoke(client, "not a token either")
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        # Another address of the same client has its own count.
        async with from_address(client, "198.51.100.7") as elsewhere:
            assert (await revoke(elsewhere, "not a token")).status_code == 200


async def test_racing_revocations_of_one_access_token_write_one_feed_row(
    limits_app: Any,
) -> None:
    async with limits_app() as client:
        await register(client, "raced")
        tokens = (await login(client, "raced")).json()
        answers = await asyncio.gather(*(revoke(client, tokens["access_token"]) for _ in range(10)))
        assert [a.status_code for a in answers] == [200] * 10
        jtis, revokes = await feed_and_audit(client)
        assert len(jtis) == 1 and revokes == 1


async def test_revoking_an_ended_sessions_refresh_token_counts_and_writes_nothing(
    limits_app: Any,
) -> None:
    async with limits_app(session_rate_limit=1, client_rate_limit=2) as client:
        await register(client, "ended")
        tokens = (await login(client, "ended")).json()
        assert (await revoke(client, tokens["refresh_token"])).status_code == 200
        for _ in range(5):
            assert (await revoke(client, tokens["refresh_token"])).status_code == 200
        async with client.app.state.auth.session_maker() as db:  # type: ignore[attr-defined]
            sids = (
                await db.scalars(select(Revocation.value).where(Revocation.kind == "sid"))
            ).all()
        assert len(sids) == 1
        assert (await revoke(client, "not a token")).status_code == 200  # the client's second
