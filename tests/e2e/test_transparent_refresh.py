"""An operation made with an expired access token succeeds when the refresh token comes with it."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.e2e.conftest import LiveSystemFactory
from tests.e2e.flows import bearer, sign_up_and_log_in
from tests.e2e.servers import LiveSystem

pytestmark = pytest.mark.e2e


@pytest.fixture
def system(live_system_factory: LiveSystemFactory) -> LiveSystem:
    """Access tokens live one second, and the resource server allows no clock skew."""
    return live_system_factory(
        auth={"AUTH_ACCESS_TOKEN_TTL": "1"}, resource={"RESOURCE_LEEWAY": "0"}
    )


async def until_expired() -> None:
    await asyncio.sleep(2.2)


def expired_with_refresh(tokens: dict[str, str]) -> dict[str, str]:
    return bearer(tokens["access_token"]) | {"Refresh-Token": tokens["refresh_token"]}


async def test_six_concurrent_expired_requests_share_one_new_pair(system: LiveSystem) -> None:
    async with httpx.AsyncClient(timeout=15) as http:
        tokens = await sign_up_and_log_in(http, system.auth.url)
        notes = f"{system.resource.url}/notes"
        await until_expired()

        expired = await http.get(notes, headers=bearer(tokens["access_token"]))
        assert expired.status_code == 401
        assert "New-Access-Token" not in expired.headers

        headers = expired_with_refresh(tokens)
        responses = await asyncio.gather(*(http.get(notes, headers=headers) for _ in range(6)))
        assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
        pairs = {(r.headers["New-Access-Token"], r.headers["New-Refresh-Token"]) for r in responses}
        assert len(pairs) == 1
        ((new_access, new_refresh),) = pairs
        assert new_refresh != tokens["refresh_token"]
        assert int(responses[0].headers["New-Access-Token-Expires-In"]) == 1

        # The new pair is a real one: the new refresh token rotates again at the auth server.
        again = await http.post(
            f"{system.auth.url}/token",
            data={"grant_type": "refresh_token", "refresh_token": new_refresh, "client_id": "web"},
        )
        assert again.status_code == 200, again.text

        # Neither server ever wrote a token into its log.
        for server in (system.auth, system.resource):
            log = server.log()
            for secret in (
                tokens["refresh_token"],
                new_refresh,
                new_access,
                tokens["access_token"],
            ):
                assert secret not in log


async def test_a_write_with_an_expired_token_and_refresh_token_is_performed_once(
    system: LiveSystem,
) -> None:
    async with httpx.AsyncClient(timeout=15) as http:
        tokens = await sign_up_and_log_in(http, system.auth.url)
        await until_expired()
        headers = expired_with_refresh(tokens)
        created = await http.post(
            f"{system.resource.url}/notes", json={"title": "t", "body": "b"}, headers=headers
        )
        assert created.status_code == 201, created.text
        fresh = bearer(created.headers["New-Access-Token"])
        listed = await http.get(f"{system.resource.url}/notes", headers=fresh)
        assert [n["title"] for n in listed.json()["items"]] == ["t"]


async def test_a_revoked_refresh_token_gets_the_plain_invalid_token_challenge(
    system: LiveSystem,
) -> None:
    async with httpx.AsyncClient(timeout=15) as http:
        tokens = await sign_up_and_log_in(http, system.auth.url)
        revoked = await http.post(
            f"{system.auth.url}/revoke", data={"token": tokens["refresh_token"], "client_id": "web"}
        )
        assert revoked.status_code == 200
        await until_expired()
        headers = expired_with_refresh(tokens)
        response = await http.get(f"{system.resource.url}/notes", headers=headers)
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert "New-Access-Token" not in response.headers


async def test_auth_server_down_during_refresh_gives_503_with_retry_after(
    system: LiveSystem,
) -> None:
    async with httpx.AsyncClient(timeout=15) as http:
        tokens = await sign_up_and_log_in(http, system.auth.url)
        # The resource server learns the token endpoint while the auth server is up.
        assert (await http.get(f"{system.resource.url}/readyz")).status_code == 200
        system.auth.stop()
        await until_expired()
        headers = expired_with_refresh(tokens)
        response = await http.post(
            f"{system.resource.url}/notes", json={"title": "t", "body": "b"}, headers=headers
        )
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) >= 1
        assert response.headers["content-type"].startswith("application/problem+json")
