"""Fixtures shared by the integration test packages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from auth_server.settings import AuthSettings
from shared.service.db import create_engine, create_session_maker, transaction
from tests.integration.auth.conftest import PASSWORD, login, register


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
    from shared.service.db import transaction

    state = auth_app.state.auth
    async with transaction(state.session_maker) as db:
        client, secret = await create_client(
            db,
            client_id="backend",
            confidential=True,
            grant_types=["client_credentials"],
            scopes=["notes:read"],
        )
    assert secret is not None
    return client.id, secret


@pytest.fixture
async def db(auth_settings: AuthSettings) -> AsyncIterator[Any]:
    engine = create_engine(auth_settings.database_url)
    async with create_session_maker(engine)() as session:
        yield session
    await engine.dispose()


@pytest.fixture
async def admin_tokens(auth_app: Any, auth_client: httpx.AsyncClient) -> dict[str, Any]:
    from auth_server.users.service import new_user
    from auth_server.users.service import register as register_user

    state = auth_app.state.auth
    async with transaction(state.session_maker) as session:
        await register_user(
            session,
            state.passwords,
            new_user(
                username="root-admin",
                email="root-admin@example.com",
                password=PASSWORD,
                is_admin=True,
            ),
        )
    # The admin scope is granted only when asked for by name (contract §7).
    response = await login(auth_client, "root-admin", scope="notes:read notes:write admin")
    assert response.status_code == 200
    return dict(response.json())
