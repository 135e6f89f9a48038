"""RFC 7009 revocation, RFC 7662 introspection of every token state, and the revocation feed."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from auth_server.persistence.models import Revocation
from tests.integration.sessions.conftest import (
    AppFactory,
    Clock,
    bearer,
    login,
    refresh,
    register,
)


async def _introspect(
    client: httpx.AsyncClient, creds: tuple[str, str], token: str, **form: str
) -> dict[str, Any]:
    response = await client.post("/introspect", data={"token": token} | form, auth=creds)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return dict(response.json())


async def test_revoking_a_refresh_token_ends_its_session(
    auth_client: httpx.AsyncClient,
    user_tokens: dict[str, Any],
    confidential_client: tuple[str, str],
) -> None:
    revoked = await auth_client.post(
        "/revoke", data={"token": user_tokens["refresh_token"], "client_id": "web"}
    )
    assert revoked.status_code == 200
    assert (await refresh(auth_client, user_tokens["refresh_token"])).status_code == 400
    me = await auth_client.get("/users/me", headers=bearer(user_tokens["access_token"]))
    assert me.status_code == 401 and 'error="invalid_token"' in me.headers["WWW-Authenticate"]
    assert (await _introspect(auth_client, confidential_client, user_tokens["access_token"])) == {
        "active": False
    }
    feed = (await auth_client.get("/revocations")).json()
    sid = json.loads(
        __import__("base64").urlsafe_b64decode(user_tokens["access_token"].split(".")[1] + "==")
    )["sid"]
    assert {"type": "sid", "value": sid} in [
        {"type": e["type"], "value": e["value"]} for e in feed["events"]
    ]


async def test_revoking_an_access_token_denies_its_jti_only(
    auth_client: httpx.AsyncClient,
    user_tokens: dict[str, Any],
    confidential_client: tuple[str, str],
) -> None:
    revoked = await auth_client.post(
        "/revoke",
        data={
            "token": user_tokens["access_token"],
            "token_type_hint": "access_token",
            "client_id": "web",
        },
    )
    assert revoked.status_code == 200
    assert (await _introspect(auth_client, confidential_client, user_tokens["access_token"]))[
        "active"
    ] is False
    assert (
        await auth_client.get("/users/me", headers=bearer(user_tokens["access_token"]))
    ).status_code == 401
    # The session itself lives on: its refresh token still works.
    assert (await refresh(auth_client, user_tokens["refresh_token"])).status_code == 200
    events = (await auth_client.get("/revocations")).json()["events"]
    assert [e["type"] for e in events] == ["jti"]


async def test_revoke_answers_200_for_unknown_tokens_and_checks_its_input(
    auth_client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    unknown = await auth_client.post("/revoke", data={"token": "garbage", "client_id": "web"})
    assert unknown.status_code == 200
    missing = await auth_client.post("/revoke", data={"client_id": "web"})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    no_client = await auth_client.post("/revoke", data={"token": user_tokens["refresh_token"]})
    assert no_client.status_code == 400 and no_client.json()["error"] == "invalid_client"
    json_body = await auth_client.post("/revoke", json={"token": "x", "client_id": "web"})
    assert json_body.status_code == 400 and json_body.json()["error"] == "invalid_request"
    # Nothing was revoked by the failed attempts.
    assert (await refresh(auth_client, user_tokens["refresh_token"])).status_code == 200


async def test_introspection_of_every_state(
    app_with: AppFactory, auth_app: Any, confidential_client: tuple[str, str]
) -> None:
    creds = confidential_client
    clock = Clock()
    async with app_with(clock, access_token_ttl=1) as client:
        user = await register(client)
        tokens = (await login(client, user["username"])).json()
        active = await _introspect(client, creds, tokens["access_token"])
        assert active["active"] is True
        assert active["token_type"] == "Bearer" and active["client_id"] == "web"
        assert active["scope"] == "notes:read notes:write" and active["sid"]
        assert {"sub", "exp", "iat", "jti", "iss", "aud"} <= active.keys()

        live_refresh = await _introspect(client, creds, tokens["refresh_token"])
        assert live_refresh["active"] is True and live_refresh["token_type"] == "refresh_token"

        assert (await _introspect(client, creds, "garbage.token.here")) == {"active": False}
        assert (await _introspect(client, creds, "x" * 2000)) == {"active": False}

        rotated = (await refresh(client, tokens["refresh_token"])).json()
        assert (await _introspect(client, creds, tokens["refresh_token"])) == {
            "active": False
        }  # used

        clock.advance(6.2)  # past the 1 s lifetime plus the auth server's 5 s clock skew
        assert (await _introspect(client, creds, rotated["access_token"])) == {
            "active": False
        }  # expired

        await client.post("/revoke", data={"token": rotated["refresh_token"], "client_id": "web"})
        assert (await _introspect(client, creds, rotated["refresh_token"])) == {
            "active": False
        }  # ended


async def test_introspection_is_for_confidential_clients_only(
    auth_client: httpx.AsyncClient,
    user_tokens: dict[str, Any],
    confidential_client: tuple[str, str],
) -> None:
    public = await auth_client.post(
        "/introspect", data={"token": user_tokens["access_token"], "client_id": "web"}
    )
    assert public.status_code == 400 and public.json()["error"] == "invalid_client"
    wrong = await auth_client.post(
        "/introspect",
        data={"token": user_tokens["access_token"]},
        auth=(confidential_client[0], "wrong"),
    )
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert wrong.json()["error"] == "invalid_client"
    post_auth = await auth_client.post(
        "/introspect",
        data={
            "token": user_tokens["access_token"],
            "client_id": confidential_client[0],
            "client_secret": confidential_client[1],
        },
    )
    assert post_auth.status_code == 200 and post_auth.json()["active"] is True


async def test_feed_cursor_advances_and_expired_events_are_not_served(
    auth_client: httpx.AsyncClient, db: Any
) -> None:
    for _ in range(3):
        user = await register(auth_client)
        tokens = (await login(auth_client, user["username"])).json()
        await auth_client.post(
            "/revoke", data={"token": tokens["refresh_token"], "client_id": "web"}
        )
    # Age the events past the settle delay, so the cursor may move past them.
    await db.execute(
        update(Revocation).values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=10))
    )
    await db.commit()
    page = (await auth_client.get("/revocations", params={"since": "0"})).json()
    assert [e["type"] for e in page["events"]] == ["sid"] * 3
    event = page["events"][0]
    assert set(event) == {"id", "type", "value", "not_before", "expires_at", "revoked_at"}
    assert event["expires_at"] > dt.datetime.now(dt.UTC).timestamp()
    assert event["revoked_at"] < dt.datetime.now(dt.UTC).timestamp() - 9
    assert page["cursor"] == str(page["events"][-1]["id"])
    assert (await auth_client.get("/revocations", params={"since": page["cursor"]})).json()[
        "events"
    ] == []

    await db.execute(
        update(Revocation).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    )
    await db.commit()
    assert (await auth_client.get("/revocations")).json()["events"] == []


@pytest.mark.parametrize("cursor", ["abc", "-1", "1" * 40, "1.5"])
async def test_a_bad_feed_cursor_is_a_400_problem(
    auth_client: httpx.AsyncClient, cursor: str
) -> None:
    response = await auth_client.get("/revocations", params={"since": cursor})
    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_recent_events_are_sent_again_until_they_settle(
    auth_client: httpx.AsyncClient, user_tokens: dict[str, Any]
) -> None:
    await auth_client.post(
        "/revoke", data={"token": user_tokens["refresh_token"], "client_id": "web"}
    )
    first = (await auth_client.get("/revocations")).json()
    assert len(first["events"]) == 1 and first["cursor"] == "0"
    again = (await auth_client.get("/revocations", params={"since": first["cursor"]})).json()
    assert again["events"] == first["events"]


async def test_revocations_are_published_on_redis(
    app_with: AppFactory, redis_url: str, redis_prefix: str
) -> None:
    import redis.asyncio as aioredis

    subscriber = aioredis.Redis.from_url(redis_url)
    pubsub = subscriber.pubsub()
    await pubsub.subscribe(f"{redis_prefix}:revocations")
    try:
        async with app_with(redis_url=redis_url, redis_prefix=redis_prefix) as client:
            user = await register(client)
            tokens = (await login(client, user["username"])).json()
            await client.post(
                "/revoke", data={"token": tokens["refresh_token"], "client_id": "web"}
            )
            message = None
            for _ in range(50):
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                if message:
                    break
            assert message is not None
            event = json.loads(message["data"])
            assert event["type"] == "sid" and event["expires_at"] > 0
    finally:
        await pubsub.aclose()
        await subscriber.aclose()
