"""Helpers for auth server integration tests."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

PASSWORD = "correct horse battery staple 42"


async def register(
    client: httpx.AsyncClient, username: str | None = None, **extra: Any
) -> dict[str, Any]:
    username = username or f"user{secrets.token_hex(4)}"
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD} | extra
    response = await client.post("/users", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, **form: str
) -> httpx.Response:
    data = {
        "grant_type": "password",
        "username": username,
        "password": password,
        "client_id": "web",
    } | form
    return await client.post("/token", data=data)
