"""Both services as real processes: log in at the auth server, use the notes API, rotate keys."""

from __future__ import annotations

import asyncio

import httpx
import jwt
import pytest

from tests.e2e.conftest import LiveSystemFactory
from tests.e2e.flows import bearer, log_in, sign_up_and_log_in

pytestmark = pytest.mark.e2e


async def test_login_then_crud_on_notes(live_system_factory: LiveSystemFactory) -> None:
    system = live_system_factory()
    async with httpx.AsyncClient(timeout=10) as http:
        tokens = await sign_up_and_log_in(http, system.auth.url)
        headers = bearer(tokens["access_token"])
        notes = f"{system.resource.url}/notes"

        me = await http.get(f"{system.resource.url}/me", headers=headers)
        assert me.status_code == 200
        assert (
            me.json()["sub"]
            == jwt.decode(tokens["access_token"], options={"verify_signature": False})["sub"]
        )

        created = await http.post(notes, json={"title": "first", "body": "hello"}, headers=headers)
        assert created.status_code == 201, created.text
        note_id = created.json()["id"]
        assert created.headers["Location"].endswith(f"/notes/{note_id}")

        listed = await http.get(notes, headers=headers)
        assert [n["id"] for n in listed.json()["items"]] == [note_id]

        patched = await http.patch(f"{notes}/{note_id}", json={"title": "renamed"}, headers=headers)
        assert patched.status_code == 200 and patched.json()["title"] == "renamed"

        other = await sign_up_and_log_in(http, system.auth.url)
        hidden = await http.get(f"{notes}/{note_id}", headers=bearer(other["access_token"]))
        assert hidden.status_code == 404

        deleted = await http.delete(f"{notes}/{note_id}", headers=headers)
        assert deleted.status_code == 204
        gone = await http.get(f"{notes}/{note_id}", headers=headers)
        assert gone.status_code == 404

        anonymous = await http.get(notes)
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer realm=")


async def test_tokens_signed_by_a_rotated_key_verify_and_emergency_retirement_stops_them(
    live_system_factory: LiveSystemFactory,
) -> None:
    # Default settings: the first next key has been in every JWKS served, so it may sign at once.
    system = live_system_factory()
    async with httpx.AsyncClient(timeout=10) as http:
        first = await sign_up_and_log_in(http, system.auth.url)
        first_kid = jwt.get_unverified_header(first["access_token"])["kid"]
        assert (
            await http.get(f"{system.resource.url}/me", headers=bearer(first["access_token"]))
        ).status_code == 200

        rotated = system.cli("keys", "rotate")
        assert rotated.returncode == 0, rotated.stderr

        # The auth server picks up the new active key within its key-cache interval.
        second = first
        for _ in range(50):
            second = await log_in(http, system.auth.url, first["username"])
            if jwt.get_unverified_header(second["access_token"])["kid"] != first_kid:
                break
            await asyncio.sleep(0.2)
        second_kid = jwt.get_unverified_header(second["access_token"])["kid"]
        assert second_kid != first_kid

        # Both the retiring key's token and the new key's token verify at the resource server.
        for token in (first["access_token"], second["access_token"]):
            me = await http.get(f"{system.resource.url}/me", headers=bearer(token))
            assert me.status_code == 200, me.text

        emergency = system.cli("keys", "rotate", "--emergency")
        assert emergency.returncode == 0, emergency.stderr

        # The retired kid reaches the resource server through the revocation feed.
        status = 200
        for _ in range(40):
            status = (
                await http.get(f"{system.resource.url}/me", headers=bearer(second["access_token"]))
            ).status_code
            if status == 401:
                break
            await asyncio.sleep(0.25)
        assert status == 401


async def test_resource_server_keeps_verifying_while_the_auth_server_is_down_even_after_restart(
    live_system_factory: LiveSystemFactory,
) -> None:
    from tests.e2e.servers import free_port, start_server

    system = live_system_factory()
    async with httpx.AsyncClient(timeout=10) as http:
        tokens = await sign_up_and_log_in(http, system.auth.url)
        headers = bearer(tokens["access_token"])
        assert (await http.get(f"{system.resource.url}/me", headers=headers)).status_code == 200

        system.auth.stop()
        assert (await http.get(f"{system.resource.url}/me", headers=headers)).status_code == 200

        # A restart during the outage verifies with the key set persisted to disk.
        system.resource.stop()
        restarted = start_server(
            "resource-restarted",
            "resource-server",
            free_port(),
            system.resource_env,
            system.resource.log_path.parent,
        )
        system.servers.append(restarted)
        me = await http.get(f"{restarted.url}/me", headers=headers)
        assert me.status_code == 200, me.text
