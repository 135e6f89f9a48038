"""FastAPI's native OpenTelemetry: off by default (no per-request provider check), on by a
setting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.telemetry import _asgi

from auth_server.main import create_app as create_auth_app
from auth_server.settings import AuthSettings
from resource_server.main import create_app as create_resource_app
from resource_server.settings import ResourceSettings
from tests.databases import TEST_KEK


def resource_app(**settings: Any) -> FastAPI:
    return create_resource_app(
        ResourceSettings(
            _env_file=None,  # type: ignore[call-arg]
            issuer="http://127.0.0.1:8000",
            database_url="sqlite+aiosqlite:///:memory:",
            **settings,
        )
    )


def auth_app(**settings: Any) -> FastAPI:
    return create_auth_app(
        AuthSettings(
            _env_file=None,  # type: ignore[call-arg]
            environment="test",
            database_url="sqlite+aiosqlite:///:memory:",
            key_encryption_key=TEST_KEK,
            **settings,
        )
    )


@pytest.mark.parametrize("make", [resource_app, auth_app])
@pytest.mark.parametrize("enabled", [False, True])
async def test_the_tracer_provider_is_asked_per_request_only_when_telemetry_is_on(
    monkeypatch: pytest.MonkeyPatch, make: Callable[..., FastAPI], enabled: bool
) -> None:
    asked: list[int] = []
    original = _asgi.trace.get_tracer_provider

    def counting() -> Any:
        asked.append(1)
        return original()

    monkeypatch.setattr(_asgi.trace, "get_tracer_provider", counting)
    app = make(opentelemetry=enabled)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for _ in range(3):
            # No lifespan: a route that needs no state answers (404), which is enough here.
            assert (await client.get("/no-such-route")).status_code == 404
    if enabled:
        assert len(asked) >= 3
    else:
        assert asked == []
