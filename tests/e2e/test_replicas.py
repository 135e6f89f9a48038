"""Two auth server replicas and two resource servers as processes on loopback, one database:
keys, sessions and revocations are shared state, never one process's memory."""

from __future__ import annotations

import asyncio

import httpx
import jwt
import pytest

from tests.e2e.conftest import LiveSystemFactory
from tests.e2e.flows import PASSWORD, bearer
from tests.e2e.servers import free_port, start_server

pytestmark = pytest.mark.e2e


async def test_replicas_share_keys_sessions_and_revocations(
    live_system_factory: LiveSystemFactory,
) -> None:
    system = live_system_factory()
    auth_b = start_server(
        "auth-b", "auth-server", free_port(), system.auth_env, system.auth.log_path.parent
    )
    system.servers.append(auth_b)
    resource_b = start_server(
        "resource-b",
        "resource-server",
        free_port(),
        system.resource_env,
        system.resource.log_path.parent,
    )
    system.servers.append(resource_b)
    async with httpx.AsyncClient(timeout=10) as http:
        jwks_a = (await http.get(f"{system.auth.url}/.well-known/jwks.json")).json()
        jwks_b = (await http.get(f"{auth_b.url}/.well-known/jwks.json")).json()
        assert jwks_a == jwks_b and len(jwks_a["keys"]) == 2

        created = await http.post(
            f"{system.auth.url}/users",
            json={
                "username": "replicated",
                "email": "replicated@example.com",
                "password": PASSWORD,
            },
        )
        assert created.status_code == 201
        # Log in at replica B, refresh at replica A, replay at B inside the grace window.
        login = await http.post(
            f"{auth_b.url}/token",
            data={
                "grant_type": "password",
                "client_id": "web",
                "username": "replicated",
                "password": PASSWORD,
            },
        )
        tokens = login.json()
        form = {
            "grant_type": "refresh_token",
            "client_id": "web",
            "refresh_token": tokens["refresh_token"],
        }
        first, replay = await asyncio.gather(
            http.post(f"{system.auth.url}/token", data=form),
            http.post(f"{auth_b.url}/token", data=form),
        )
        assert first.status_code == replay.status_code == 200
        assert first.json() == replay.json()
        fresh = first.json()["access_token"]
        assert jwt.get_unverified_header(fresh)["kid"] in {k["kid"] for k in jwks_a["keys"]}

        for resource in (system.resource, resource_b):
            assert (await http.get(f"{resource.url}/me", headers=bearer(fresh))).status_code == 200

        # End the session at replica A: both resource servers learn it from the feed.
        ended = await http.delete(f"{system.auth.url}/sessions", headers=bearer(fresh))
        assert ended.status_code == 204
        for resource in (system.resource, resource_b):
            status = 200
            for _ in range(40):
                status = (await http.get(f"{resource.url}/me", headers=bearer(fresh))).status_code
                if status == 401:
                    break
                await asyncio.sleep(0.1)
            assert status == 401, resource.name
        assert (
            await http.post(
                f"{auth_b.url}/token", data=form | {"refresh_token": first.json()["refresh_token"]}
            )
        ).status_code == 400
