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
