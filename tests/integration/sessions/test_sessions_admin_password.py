"""Listing and ending sessions, the admin endpoints, password changes, and the sweeper."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from sqlalchemy import func, select, update

from auth_server.persistence.models import (
    AuditEvent,
    AuthorizationCode,
    LoginFlow,
    LoginSession,
    RateLimitCounter,
    RefreshToken,
    Revocation,
)
from auth_server.persistence.sweeper import sweep_once
from tests.integration.sessions.conftest import PASSWORD, bearer, login, refresh, register


async def test_sessions_list_marks_the_current_one(auth_client: httpx.AsyncClient) -> None:
    user = await register(auth_client)
    first = (await login(auth_client, user["username"])).json()
    second = (await login(auth_client, user["username"])).json()
    listed = await auth_client.get("/sessions", headers=bearer(second["access_token"]))
    assert listed.status_code == 200
    sessions = listed.json()
    assert len(sessions) == 2
    assert [s["current"] for s in sessions].count(True) == 1
    current = next(s for s in sessions if s["current"])
    assert current["client_id"] == "web" and current["ip"] == "127.0.0.1"
    assert {
        "id",
        "created_at",
        "last_used_at",
        "expires_at",
        "user_agent",
        "scope",
    } <= current.keys()
    assert first["refresh_token"] not in listed.text


async def test_ending_one_session_leaves_the_others(auth_client: httpx.AsyncClient) -> None:
    user = await register(auth_client)
    first = (await login(auth_client, user["username"])).json()
    second = (await login(auth_client, user["username"])).json()
    sessions = (await auth_client.get("/sessions", headers=bearer(second["access_token"]))).json()
    other = next(s for s in sessions if not s["current"])
    ended = await auth_client.delete(
        f"/sessions/{other['id']}", headers=bearer(second["access_token"])
    )
    assert ended.status_code == 204
    assert (await refresh(auth_client, first["refresh_token"])).status_code == 400
    assert (await refresh(auth_client, second["refresh_token"])).status_code == 200
    again = await auth_client.delete(
        f"/sessions/{other['id']}", headers=bearer(second["access_token"])
    )
    assert again.status_code == 404


async def test_someone_elses_session_is_not_found(auth_client: httpx.AsyncClient) -> None:
    alice = await register(auth_client)
    bob = await register(auth_client)
    alice_tokens = (await login(auth_client, alice["username"])).json()
    bob_tokens = (await login(auth_client, bob["username"])).json()
    bob_session = (
        await auth_client.get("/sessions", headers=bearer(bob_tokens["access_token"]))
    ).json()[0]
    response = await auth_client.delete(
        f"/sessions/{bob_session['id']}", headers=bearer(alice_tokens["access_token"])
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await refresh(auth_client, bob_tokens["refresh_token"])).status_code == 200


async def test_log_out_everywhere(auth_client: httpx.AsyncClient) -> None:
    user = await register(auth_client)
    logins = [(await login(auth_client, user["username"])).json() for _ in range(3)]
    response = await auth_client.delete("/sessions", headers=bearer(logins[0]["access_token"]))
    assert response.status_code == 204
    for tokens in logins:
        assert (await refresh(auth_client, tokens["refresh_token"])).status_code == 400
        assert (
            await auth_client.get("/users/me", headers=bearer(tokens["access_token"]))
        ).status_code == 401
    events = (await auth_client.get("/revocations")).json()["events"]
    assert sorted(e["type"] for e in events) == ["sid", "sid", "sid", "user"]
    user_event = next(e for e in events if e["type"] == "user")
    assert user_event["value"] == user["id"] and user_event["not_before"] is not None
    # Logging in again right away works: the new session is not caught by the logout.
    again = (await login(auth_client, user["username"])).json()
    assert (
        await auth_client.get("/users/me", headers=bearer(again["access_token"]))
    ).status_code == 200


async def test_session_endpoints_need_a_token(auth_client: httpx.AsyncClient) -> None:
    for method, path in (("GET", "/sessions"), ("DELETE", "/sessions"), ("DELETE", "/sessions/x")):
        response = await auth_client.request(method, path)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="notes-auth"'


async def test_admin_lists_every_session_and_ends_a_users_sessions(
    auth_client: httpx.AsyncClient, admin_tokens: dict[str, Any]
) -> None:
    victim = await register(auth_client)
    victim_tokens = (await login(auth_client, victim["username"])).json()
    listed = await auth_client.get("/admin/sessions", headers=bearer(admin_tokens["access_token"]))
    assert listed.status_code == 200
    subs = {s["sub"] for s in listed.json()}
    assert victim["id"] in subs
    entry = next(s for s in listed.json() if s["sub"] == victim["id"])
    assert {"client_id", "created_at", "last_used_at", "ip", "user_agent"} <= entry.keys()

    ended = await auth_client.delete(
        f"/admin/users/{victim['id']}/sessions", headers=bearer(admin_tokens["access_token"])
    )
    assert ended.status_code == 204
    assert (await refresh(auth_client, victim_tokens["refresh_token"])).status_code == 400
    assert (
        await auth_client.get("/users/me", headers=bearer(victim_tokens["access_token"]))
    ).status_code == 401
    # The admin's own session is untouched.
    assert (
        await auth_client.get("/users/me", headers=bearer(admin_tokens["access_token"]))
    ).status_code == 200
    missing = await auth_client.delete(
        "/admin/users/nobody/sessions", headers=bearer(admin_tokens["access_token"])
    )
    assert missing.status_code == 404


async def test_admin_events_are_newest_first_and_paginated(
    auth_client: httpx.AsyncClient, admin_tokens: dict[str, Any]
) -> None:
    user = await register(auth_client)
    await login(auth_client, user["username"], password="wrong password here")
    headers = bearer(admin_tokens["access_token"])
    page = (await auth_client.get("/admin/events", params={"limit": 2}, headers=headers)).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    ids = [e["id"] for e in page["items"]]
    assert ids == sorted(ids, reverse=True)
    assert page["items"][0]["type"] == "login_failed"
    rest = (
        await auth_client.get(
            "/admin/events", params={"cursor": page["next_cursor"]}, headers=headers
        )
    ).json()
    assert all(e["id"] < ids[-1] for e in rest["items"])
    assert page["items"][1]["type"] == "user_registered"
    assert "login" in {e["type"] for e in rest["items"]}
    bad = await auth_client.get("/admin/events", params={"cursor": "x"}, headers=headers)
    assert bad.status_code == 400


async def test_admin_endpoints_are_forbidden_to_other_users(
    auth_client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    headers = bearer(user_tokens["access_token"])
    for method, path in (
        ("GET", "/admin/sessions"),
        ("GET", "/admin/events"),
        ("DELETE", f"/admin/users/{user_tokens['user']['id']}/sessions"),
    ):
        response = await auth_client.request(method, path, headers=headers)
        assert response.status_code == 403, path
        assert response.headers["content-type"].startswith("application/problem+json")
        assert 'error="insufficient_scope", ' in response.headers["WWW-Authenticate"]
        assert 'scope="admin"' in response.headers["WWW-Authenticate"]


async def test_password_change_ends_every_other_session(auth_client: httpx.AsyncClient) -> None:
    user = await register(auth_client)
    other = (await login(auth_client, user["username"])).json()
    mine = (await login(auth_client, user["username"])).json()
    new_password = "a completely different passphrase 7"
    changed = await auth_client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=bearer(mine["access_token"]),
    )
    assert changed.status_code == 204, changed.text
    assert (await refresh(auth_client, other["refresh_token"])).status_code == 400
    assert (await refresh(auth_client, mine["refresh_token"])).status_code == 200
    assert (await login(auth_client, user["username"])).status_code == 400
    assert (await login(auth_client, user["username"], password=new_password)).status_code == 200


async def test_password_change_errors(
    auth_client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    headers = bearer(user_tokens["access_token"])
    wrong = await auth_client.post(
        "/users/me/password",
        json={"current_password": "not it at all", "new_password": "x" * 12 + "yz!"},
        headers=headers,
    )
    assert wrong.status_code == 403
    weak = await auth_client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "password123"},
        headers=headers,
    )
    assert weak.status_code == 422
    extra = await auth_client.post(
        "/users/me/password",
        json={
            "current_password": PASSWORD,
            "new_password": "another long passphrase",
            "is_admin": True,
        },
        headers=headers,
    )
    assert extra.status_code == 422
    assert (await auth_client.post("/users/me/password", json={})).status_code == 401


async def test_sweeper_purges_only_what_expired(
    auth_client: httpx.AsyncClient, auth_settings: Any, auth_app: Any, db: Any
) -> None:
    keep = await register(auth_client)
    keep_tokens = (await login(auth_client, keep["username"])).json()
    gone = await register(auth_client)
    gone_tokens = (await login(auth_client, gone["username"])).json()
    await auth_client.post(
        "/revoke", data={"token": gone_tokens["refresh_token"], "client_id": "web"}
    )
    rotated = (await refresh(auth_client, keep_tokens["refresh_token"])).json()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    await db.execute(
        update(LoginSession).where(LoginSession.user_id == gone["id"]).values(expires_at=past)
    )
    await db.execute(update(Revocation).values(expires_at=past))
    await db.execute(
        update(RefreshToken).where(RefreshToken.used_at.is_not(None)).values(used_at=past)
    )
    # Audit events past AUTH_AUDIT_RETENTION_DAYS (90), and an attempt counter whose window ended.
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=91)
    await db.execute(update(AuditEvent).where(AuditEvent.user_id == gone["id"]).values(at=old))
    aged = await db.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.user_id == gone["id"])
    )
    kept_events = await db.scalar(select(func.count()).select_from(AuditEvent)) - aged
    db.add(RateLimitCounter(key="expired-window", count=3, window_end=past.timestamp()))
    db.add(
        RateLimitCounter(
            key="open-window", count=1, window_end=dt.datetime.now(dt.UTC).timestamp() + 600
        )
    )
    # A sign-in abandoned half way, and a code an hour and more past its 60 s.
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    db.add(LoginFlow(id="abandoned", binding_hash="x", created_at=long_ago, expires_at=long_ago))
    db.add(
        AuthorizationCode(
            code_hash="0" * 64,
            client_id="web",
            user_id="nobody",
            browser_session_id="none",
            redirect_uri="https://app.example/cb",
            scope="openid",
            auth_time=long_ago,
            amr="pwd",
            acr="urn:notes-auth:acr:pwd",
            created_at=long_ago,
            expires_at=long_ago,
        )
    )
    await db.commit()

    counts = await sweep_once(auth_app.state.auth.session_maker, auth_settings)
    assert counts == {
        "sessions": 1,
        "revocations": 1,
        "authorization_codes": 1,
        "login_flows": 1,
        "audit_events": aged,
        "rate_limit_counters": 1,
        "grace_answers": 1,
        "webauthn_challenges": 0,
        "totp_enrolments": 0,
    }
    assert aged >= 2  # the sign-up and the login at least
    assert await db.scalar(select(func.count()).select_from(AuditEvent)) == kept_events
    keys = set((await db.scalars(select(RateLimitCounter.key))).all())
    assert "open-window" in keys and "expired-window" not in keys
    assert await db.scalar(select(func.count()).select_from(LoginSession)) == 1
    assert await db.scalar(select(func.count()).select_from(Revocation)) == 0
    assert (
        await db.scalar(select(func.count()).where(RefreshToken.grace_response.is_not(None))) == 0
    )
    await db.rollback()  # release SQLite's write lock before the server needs it
    assert (await refresh(auth_client, rotated["refresh_token"])).status_code == 200
