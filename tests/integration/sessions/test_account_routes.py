"""Issue 16 item 8, contract §8.2: the account routes (`/users/me...`, `/sessions...`) and the
admin routes are for a user's token. A client-credentials token has no user: 403, and nothing
is read or written on its behalf (the review: DELETE /sessions wrote a user "not before" event
whose value was a client id)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from auth_server.persistence.models import AuditEvent, Revocation
from tests.integration.sessions.conftest import bearer

ACCOUNT_ROUTES = [
    ("GET", "/users/me", None),
    (
        "POST",
        "/users/me/password",
        {"current_password": "whatever it is", "new_password": "a brand new passphrase 9"},
    ),
    ("GET", "/sessions", None),
    ("DELETE", "/sessions/some-session", None),
    ("DELETE", "/sessions", None),
    ("GET", "/admin/events", None),
    ("GET", "/admin/sessions", None),
]


async def test_a_token_with_no_user_gets_403_at_every_account_route(
    auth_app: Any, auth_client: httpx.AsyncClient, confidential_client: tuple[str, str]
) -> None:
    issued = await auth_client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=confidential_client
    )
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    async with auth_app.state.auth.session_maker() as db:
        audit_before = await db.scalar(select(func.count()).select_from(AuditEvent))
    for method, path, body in ACCOUNT_ROUTES:
        response = await auth_client.request(method, path, json=body, headers=bearer(token))
        assert response.status_code == 403, (method, path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    async with auth_app.state.auth.session_maker() as db:
        assert await db.scalar(select(func.count()).select_from(Revocation)) == 0
        assert await db.scalar(select(func.count()).select_from(AuditEvent)) == audit_before
