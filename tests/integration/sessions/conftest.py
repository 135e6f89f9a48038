"""Fixtures for session, rotation and revocation tests."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from auth_server.main import create_app
from auth_server.settings import AuthSettings
from tests.integration.auth.conftest import PASSWORD, login, register

__all__ = ["PASSWORD", "login", "register"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refresh(client: httpx.AsyncClient, token: str, **form: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "web"} | form
    return await client.post("/token", data=data)


@asynccontextmanager
async def running_app(
    settings: AuthSettings, clock: Callable[[], float] = time.time
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8000"
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


AppFactory = Callable[..., Any]


class Clock:
    """A clock a test moves by hand: `clock.advance(7)` instead of `sleep(7)`."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def app_with(auth_settings: AuthSettings) -> AppFactory:
    """`async with app_with(refresh_reuse_grace=1) as client:` an app with changed settings."""

    def make(clock: Callable[[], float] = time.time, **changes: Any) -> Any:
        return running_app(auth_settings.model_copy(update=changes), clock)

    return make
