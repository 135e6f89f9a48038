"""Fixtures for session, rotation and revocation tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from auth_server.main import create_app
from auth_server.settings import AuthSettings
from shared.db import create_engine, create_session_maker
from tests.integration.auth.conftest import PASSWORD, login, register

__all__ = ["PASSWORD", "login", "register"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refresh(client: httpx.AsyncClient, token: str, **form: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "web"} | form
    return await client.post("/token", data=data)


@asynccontextmanager
async def running_app(settings: AuthSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8000"
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


AppFactory = Callable[..., Any]


@pytest.fixture
def app_with(auth_settings: AuthSettings) -> AppFactory:
    """`async with app_with(refresh_reuse_grace=1) as client:` an app with changed settings."""

    def make(**changes: Any) -> Any:
        return running_app(auth_settings.model_copy(update=changes))

    return make


@pytest.fixture
async def db(auth_settings: AuthSettings) -> AsyncIterator[Any]:
    engine = create_engine(auth_settings.database_url)
    async with create_session_maker(engine)() as session:
        yield session
    await engine.dispose()


@pytest.fixture
async def admin_tokens(auth_app: Any, auth_client: httpx.AsyncClient) -> dict[str, Any]:
    from auth_server.users.service import register as register_user

    ctx = auth_app.state.ctx
    async with ctx.session_maker() as session:
        await register_user(
            session,
            ctx.passwords,
            username="root-admin",
            email="root-admin@example.com",
            password=PASSWORD,
            is_admin=True,
        )
    response = await login(auth_client, "root-admin")
    assert response.status_code == 200
    return dict(response.json())
