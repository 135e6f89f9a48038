"""Fixtures shared by the integration test packages."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.auth.conftest import login, register


@pytest.fixture
async def user_tokens(auth_client: httpx.AsyncClient) -> dict[str, Any]:
    """A fresh user, logged in with the password grant through the public `web` client."""
    user = await register(auth_client)
    response = await login(auth_client, user["username"])
    assert response.status_code == 200, response.text
    return {**response.json(), "user": user}


@pytest.fixture
async def confidential_client(auth_app: Any) -> tuple[str, str]:
    """A confidential client `backend` (client_credentials, notes:read): (client_id, secret)."""
    from auth_server.oauth.clients import create_client

    ctx = auth_app.state.ctx
    async with ctx.session_maker() as db:
        client, secret = await create_client(
            db,
            ctx.passwords,
            client_id="backend",
            confidential=True,
            grant_types=["client_credentials"],
            scopes=["notes:read"],
        )
    assert secret is not None
    return client.id, secret
