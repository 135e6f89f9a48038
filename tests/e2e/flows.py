"""What a real client does against the live system: sign up, log in, call the notes API."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

PASSWORD = "correct horse battery staple 42"


async def sign_up_and_log_in(http: httpx.AsyncClient, auth_url: str) -> dict[str, Any]:
    username = f"user{secrets.token_hex(4)}"
    created = await http.post(
        f"{auth_url}/users",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
    )
    assert created.status_code == 201, created.text
    return await log_in(http, auth_url, username)


async def log_in(http: httpx.AsyncClient, auth_url: str, username: str) -> dict[str, Any]:
    response = await http.post(
        f"{auth_url}/token",
        data={
            "grant_type": "password",
            "username": username,
            "password": PASSWORD,
            "client_id": "web",
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    body["username"] = username
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
