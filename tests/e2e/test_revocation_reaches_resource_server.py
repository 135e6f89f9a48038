"""A revoked session's unexpired access token is refused at the resource server within the target:
the poll interval plus one second through the feed, under one second through Redis."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.e2e.conftest import LiveSystemFactory
from tests.e2e.flows import bearer, sign_up_and_log_in
from tests.e2e.servers import LiveSystem

pytestmark = pytest.mark.e2e

POLL_INTERVAL = 1.0


async def _seconds_until_refused(
    http: httpx.AsyncClient, url: str, token: str, limit: float
) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        response = await http.get(url, headers=bearer(token))
        if response.status_code == 401:
            assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
            return time.monotonic() - started
        assert response.status_code == 200
        await asyncio.sleep(0.05)
    return float("inf")


async def _revoke_refresh_token(
    http: httpx.AsyncClient, auth_url: str, tokens: dict[str, str]
) -> None:
    revoked = await http.post(
        f"{auth_url}/revoke",
        data={
            "token": tokens["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": "web",
        },
    )
    assert revoked.status_code == 200, revoked.text


@pytest.fixture(scope="module")
def polling_system(module_system_factory: LiveSystemFactory) -> LiveSystem:
    """One system for the polling tests (each signs up a user of its own)."""
    return module_system_factory(resource={"RESOURCE_REVOCATION_POLL_INTERVAL": str(POLL_INTERVAL)})


async def test_revoked_session_is_refused_within_poll_interval_plus_one_second(
    polling_system: LiveSystem,
) -> None:
    system = polling_system
    async with httpx.AsyncClient(timeout=10) as http:
        tokens = await sign_up_and_log_in(http, system.auth.url)
        me = f"{system.resource.url}/me"
        # Warm the verified-token cache: revocation must beat the fast path too.
        assert (await http.get(me, headers=bearer(tokens["access_token"]))).status_code == 200

        await _revoke_refresh_token(http, system.auth.url, tokens)
        elapsed = await _seconds_until_refused(http, me, tokens["access_token"], limit=10)
        assert elapsed <= POLL_INTERVAL + 1.0, f"refused after {elapsed:.2f}s"


async def test_logout_everywhere_is_refused_at_resource_server(
    polling_system: LiveSystem,
) -> None:
    system = polling_system
    async with httpx.AsyncClient(timeout=10) as http:
        tokens = await sign_up_and_log_in(http, system.auth.url)
        me = f"{system.resource.url}/me"
        assert (await http.get(me, headers=bearer(tokens["access_token"]))).status_code == 200
        ended = await http.delete(
            f"{system.auth.url}/sessions", headers=bearer(tokens["access_token"])
        )
        assert ended.status_code == 204, ended.text
        elapsed = await _seconds_until_refused(http, me, tokens["access_token"], limit=10)
        assert elapsed <= POLL_INTERVAL + 1.0, f"refused after {elapsed:.2f}s"


async def test_revoked_session_is_refused_within_one_second_through_redis(
    live_system_factory: LiveSystemFactory, redis_url: str, redis_prefix: str
) -> None:
    # The feed is polled only every 30 s here, so only Redis can deliver within a second.
    system = live_system_factory(
        auth={"AUTH_REDIS_URL": redis_url, "AUTH_REDIS_PREFIX": redis_prefix},
        resource={
            "RESOURCE_REDIS_URL": redis_url,
            "RESOURCE_REDIS_PREFIX": redis_prefix,
            "RESOURCE_REVOCATION_POLL_INTERVAL": "30",
        },
    )
    async with httpx.AsyncClient(timeout=10) as http:
        tokens = await sign_up_and_log_in(http, system.auth.url)
        me = f"{system.resource.url}/me"
        assert (await http.get(me, headers=bearer(tokens["access_token"]))).status_code == 200
        await asyncio.sleep(0.5)  # the subscriber is connected well before the revocation
        await _revoke_refresh_token(http, system.auth.url, tokens)
        elapsed = await _seconds_until_refused(http, me, tokens["access_token"], limit=10)
        assert elapsed < 1.0, f"refused after {elapsed:.2f}s"
