"""An operation made with an expired access token succeeds when the refresh token comes with it."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
import pytest

from tests.e2e.conftest import LiveSystemFactory
from tests.e2e.flows import bearer, sign_up_and_log_in
from tests.e2e.servers import LiveSystem, free_port, start_server

pytestmark = pytest.mark.e2e


SHORT_LIVED = {"auth": {"AUTH_ACCESS_TOKEN_TTL": "1"}, "resource": {"RESOURCE_LEEWAY": "0"}}


@pytest.fixture(scope="module")
def system(module_system_factory: LiveSystemFactory) -> LiveSystem:
    """One system for the module: access tokens live one second, and the resource server allows
    no clock skew. Each test signs up a user of its own."""
    return module_system_factory(**SHORT_LIVED)


async def until_expired(tokens: dict[str, str]) -> None:
    """Until the access token has expired (its `exp` has passed: no leeway is allowed)."""
    exp = jwt.decode(tokens["access_token"], options={"verify_signature": False})["exp"]
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.05)


def expired_with_refresh(tokens: dict[str, str]) -> dict[str, str]:
    return bearer(tokens["access_token"]) | {"Refresh-Token": tokens["refresh_token"]}


async def test_six_concurrent_expired_requests_share_one_new_pair(system: LiveSystem) -> None:
    async with httpx.AsyncClient(timeout=15) as http:
        tokens = await sign_up_and_log_in(http, system.auth.url)
        notes = f"{system.resource.url}/notes"
        await until_expired(tokens)

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
        await until_expired(tokens)
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
        await until_expired(tokens)
        headers = expired_with_refresh(tokens)
        response = await http.get(f"{system.resource.url}/notes", headers=headers)
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert "New-Access-Token" not in response.headers


async def test_auth_server_down_during_refresh_gives_503_with_retry_after(
    live_system_factory: LiveSystemFactory,
) -> None:
    system = live_system_factory(**SHORT_LIVED)  # its own: this test stops the auth server
    async with httpx.AsyncClient(timeout=15) as http:
        tokens = await sign_up_and_log_in(http, system.auth.url)
        # The resource server learns the token endpoint while the auth server is up.
        assert (await http.get(f"{system.resource.url}/readyz")).status_code == 200
        system.auth.stop()
        await until_expired(tokens)
        headers = expired_with_refresh(tokens)
        response = await http.post(
            f"{system.resource.url}/notes", json={"title": "t", "body": "b"}, headers=headers
        )
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) >= 1
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_two_resource_servers_relaying_one_expired_token_at_once_share_one_pair(
    system: LiveSystem,
) -> None:
    """Issue 8: each relay passes on the caller's address and user agent, so the auth server
    sees one party, and the second exchange is a grace-window replay, not theft."""
    second = start_server(
        "resource-second",
        "resource-server",
        free_port(),
        system.resource_env | {"RESOURCE_VAR_DIR": str(system.resource.log_path.parent / "r2")},
        system.resource.log_path.parent,
    )
    system.servers.append(second)
    browser = {"User-Agent": "Test-Browser/1.0"}
    async with httpx.AsyncClient(timeout=15, headers=browser) as http:
        tokens = await sign_up_and_log_in(http, system.auth.url)
        await until_expired(tokens)
        headers = expired_with_refresh(tokens)
        first, other = await asyncio.gather(
            http.get(f"{system.resource.url}/notes", headers=headers),
            http.get(f"{second.url}/notes", headers=headers),
        )
        assert first.status_code == other.status_code == 200, (first.text, other.text)
        assert first.headers["New-Refresh-Token"] == other.headers["New-Refresh-Token"]
        # The session lives on: the new refresh token rotates again.
        again = await http.post(
            f"{system.auth.url}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": first.headers["New-Refresh-Token"],
                "client_id": "web",
            },
        )
        assert again.status_code == 200, again.text


async def test_a_replay_from_another_party_through_a_relay_ends_the_session(
    system: LiveSystem,
) -> None:
    """The same refresh token presented through the resource server by someone else (another
    user agent) within the grace window is reuse: invalid, and the session ends."""
    async with httpx.AsyncClient(timeout=15) as http:
        tokens = await sign_up_and_log_in(http, system.auth.url)
        await until_expired(tokens)
        mine = await http.get(
            f"{system.resource.url}/notes",
            headers=expired_with_refresh(tokens) | {"User-Agent": "Test-Browser/1.0"},
        )
        assert mine.status_code == 200
        theirs = await http.get(
            f"{system.resource.url}/notes",
            headers=expired_with_refresh(tokens) | {"User-Agent": "Thief/6.6"},
        )
        assert theirs.status_code == 401
        renewed = await http.post(
            f"{system.auth.url}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": mine.headers["New-Refresh-Token"],
                "client_id": "web",
            },
        )
        assert renewed.status_code == 400  # theft detected: the whole session ended


async def test_someone_elses_expired_token_cannot_spend_a_victims_refresh_token(
    system: LiveSystem,
) -> None:
    """The review: Mallory's expired token with the victim's Refresh-Token got 401, but the
    victim's refresh token had been rotated, and the victim's next refresh ended the session."""
    async with httpx.AsyncClient(timeout=15) as http:
        victim = await sign_up_and_log_in(http, system.auth.url)
        mallory = await sign_up_and_log_in(http, system.auth.url)
        await until_expired(mallory)
        attempt = await http.get(
            f"{system.resource.url}/notes",
            headers=bearer(mallory["access_token"]) | {"Refresh-Token": victim["refresh_token"]},
        )
        assert attempt.status_code == 401
        bogus = await http.get(
            f"{system.resource.url}/notes",
            headers=bearer(mallory["access_token"]) | {"Refresh-Token": "not-a-real-token"},
        )
        # One message: the answer does not tell that the victim's token was a good one.
        assert attempt.headers["WWW-Authenticate"] == bogus.headers["WWW-Authenticate"]
        victims_refresh = await http.post(
            f"{system.auth.url}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": victim["refresh_token"],
                "client_id": "web",
            },
        )
        assert victims_refresh.status_code == 200, victims_refresh.text
