"""RFC 8414 metadata, health, readiness, metrics, and a third party verifying our tokens with
nothing but the JWKS URL of a real running server."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.e2e.servers import auth_env, free_port, start_server
from tests.integration.auth.conftest import PASSWORD


async def test_metadata_lists_only_endpoints_that_exist(
    auth_client: httpx.AsyncClient, auth_settings: Any
) -> None:
    response = await auth_client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    meta = response.json()
    assert meta["issuer"] == auth_settings.issuer
    assert set(meta["grant_types_supported"]) == {
        "authorization_code",
        "password",
        "refresh_token",
        "client_credentials",
    }
    assert {"notes:read", "notes:write"} <= set(meta["scopes_supported"])
    assert "client_secret_basic" in meta["token_endpoint_auth_methods_supported"]
    probes = {
        "authorization_endpoint": "GET",
        "userinfo_endpoint": "GET",
        "end_session_endpoint": "GET",
        "token_endpoint": "POST",
        "revocation_endpoint": "POST",
        "introspection_endpoint": "POST",
        "jwks_uri": "GET",
        "revocation_feed_endpoint": "GET",
    }
    for name, method in probes.items():
        assert meta[name].startswith(auth_settings.issuer)
        path = meta[name].removeprefix(auth_settings.issuer)
        probe = await auth_client.request(method, path, data={} if method == "POST" else None)
        assert probe.status_code not in (404, 405), name


async def test_health_readiness_and_metrics(
    auth_client: httpx.AsyncClient, user_tokens: Any
) -> None:
    assert (await auth_client.get("/healthz")).json() == {"status": "ok"}
    ready = await auth_client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "database": True,
        "signing_key": True,
    }
    metrics = await auth_client.get("/metrics")
    assert metrics.status_code == 200
    assert "tokens_issued_total" in metrics.text
    assert user_tokens["access_token"] not in metrics.text


async def test_unknown_routes_and_methods_are_problem_json(auth_client: httpx.AsyncClient) -> None:
    missing = await auth_client.get("/nope")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(
        "application/problem+json"
    )
    wrong = await auth_client.put("/users")
    assert wrong.status_code == 405 and wrong.headers["content-type"].startswith(
        "application/problem+json"
    )


def test_a_third_party_verifies_our_token_with_only_the_jwks_url(tmp_path: Path) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = auth_env(issuer, f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}", tmp_path / "var")
    server = start_server("auth", "auth-server", port, env, tmp_path)
    try:
        username = f"u{secrets.token_hex(4)}"
        created = httpx.post(
            f"{issuer}/users",
            json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        )
        assert created.status_code == 201
        token = httpx.post(
            f"{issuer}/token",
            data={
                "grant_type": "password",
                "client_id": "web",
                "username": username,
                "password": PASSWORD,
            },
        ).json()["access_token"]

        jwks = jwt.PyJWKClient(f"{issuer}/.well-known/jwks.json")
        key = jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token, key.key, algorithms=["RS256"], issuer=issuer, audience="notes-api"
        )
        assert claims["client_id"] == "web"
        with pytest.raises(jwt.InvalidAudienceError):
            jwt.decode(token, key.key, algorithms=["RS256"], issuer=issuer, audience="another-api")
        with pytest.raises(jwt.InvalidIssuerError):
            jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                issuer="http://evil.example",
                audience="notes-api",
            )
    finally:
        server.stop()


async def test_unknown_user_and_wrong_password_take_the_same_time(auth_settings: Any) -> None:
    """Within ±25%, with production Argon2 costs (the default settings).

    The hashing threads run at a lower CPU priority than the rest of the process, so load from
    elsewhere on the machine (another test worker) stretches a login by several times while it
    lasts. Each unknown-user attempt is therefore compared with the wrong-password attempt next
    to it in time, in alternating order, and the median of those ratios is asserted: a burst of
    load spoils a few pairs, not the median. A real difference (no dummy hash, an extra hash, a
    slow query on one path) moves every pair alike."""
    import statistics
    import time

    from tests.integration.auth.conftest import register
    from tests.integration.sessions.conftest import running_app

    production_costs = {
        "password_hash_time_cost": 3,
        "password_hash_memory_cost": 65536,
        "password_hash_parallelism": 4,
    }
    settings = auth_settings.model_copy(
        update=production_costs | {"login_failure_limit": 1000, "login_ip_limit": 1000}
    )
    async with running_app(settings) as client:
        await register(client, "timed")

        async def attempt(username: str) -> float:
            started = time.perf_counter()
            response = await client.post(
                "/token",
                data={
                    "grant_type": "password",
                    "client_id": "web",
                    "username": username,
                    "password": "wrong password 99",
                },
            )
            elapsed = time.perf_counter() - started
            assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
            return elapsed

        await attempt("timed")  # warm-up
        await attempt("nobody-here")
        ratios = []
        for i in range(15):
            if i % 2:
                unknown, known = await attempt("nobody-here"), await attempt("timed")
            else:
                known, unknown = await attempt("timed"), await attempt("nobody-here")
            ratios.append(unknown / known)
        ratio = statistics.median(ratios)
        assert 0.75 <= ratio <= 1.25, sorted(ratios)


async def test_failed_logins_are_throttled_per_user_and_address(auth_settings: Any) -> None:
    from tests.integration.auth.conftest import login, register
    from tests.integration.sessions.conftest import running_app

    settings = auth_settings.model_copy(update={"login_failure_limit": 3, "login_ip_limit": 5})
    async with running_app(settings) as client:
        await register(client, "victim")
        await register(client, "bystander")
        for _ in range(3):
            assert (await login(client, "victim", password="wrong password 1")).status_code == 400
        blocked = await login(client, "victim")  # even the right password waits
        assert blocked.status_code == 429
        assert int(blocked.headers["Retry-After"]) >= 1
        assert blocked.headers["Cache-Control"] == "no-store"
        # Another username from the same address still works, until the address limit.
        assert (await login(client, "bystander")).status_code == 200
        for _ in range(2):
            await login(client, "bystander", password="wrong password 2")
        assert (await login(client, "bystander")).status_code == 429


async def test_a_successful_login_forgives_earlier_failures(auth_settings: Any) -> None:
    from tests.integration.auth.conftest import login, register
    from tests.integration.sessions.conftest import running_app

    async with running_app(auth_settings.model_copy(update={"login_failure_limit": 3})) as client:
        await register(client, "forgetful")
        for _ in range(2):
            await login(client, "forgetful", password="wrong password 1")
        assert (await login(client, "forgetful")).status_code == 200
        for _ in range(2):
            await login(client, "forgetful", password="wrong password 1")
        assert (await login(client, "forgetful")).status_code == 200


async def test_throttling_is_shared_through_redis(
    auth_settings: Any, redis_url: str, redis_prefix: str
) -> None:
    from tests.integration.auth.conftest import login, register
    from tests.integration.sessions.conftest import running_app

    settings = auth_settings.model_copy(
        update={"login_failure_limit": 2, "redis_url": redis_url, "redis_prefix": redis_prefix}
    )
    async with running_app(settings) as replica_a, running_app(settings) as replica_b:
        await register(replica_a, "shared")
        assert (await login(replica_a, "shared", password="wrong password 1")).status_code == 400
        assert (await login(replica_b, "shared", password="wrong password 1")).status_code == 400
        assert (await login(replica_a, "shared")).status_code == 429


async def test_password_hashes_are_upgraded_when_the_parameters_change(auth_settings: Any) -> None:
    from sqlalchemy import select

    from auth_server.persistence.models import User
    from tests.integration.auth.conftest import login, register
    from tests.integration.sessions.conftest import running_app

    async with running_app(auth_settings) as client:
        await register(client, "upgrader")
    stronger = auth_settings.model_copy(update={"password_hash_time_cost": 2})
    async with running_app(stronger) as client:
        assert (await login(client, "upgrader")).status_code == 200
        state = client.app.state.auth  # type: ignore[attr-defined]
        async with state.session_maker() as db:
            stored = await db.scalar(select(User.password_hash).where(User.username == "upgrader"))
    assert stored is not None and "t=2" in stored


async def test_with_redis_down_logins_are_counted_in_the_database(auth_settings: Any) -> None:
    """Issue 12: nobody could log in while Redis was down (the throttle failed closed). The
    attempt counters now fall back to the database, and keep counting."""
    from tests.e2e.servers import free_port
    from tests.integration.auth.conftest import login, register
    from tests.integration.sessions.conftest import running_app

    down = auth_settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{free_port()}/0", "login_failure_limit": 2}
    )
    async with running_app(down) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert ready.json()["checks"] == {"database": True, "signing_key": True, "redis": False}
        await register(client, "storeless")
        assert (await login(client, "storeless")).status_code == 200
        for _ in range(2):
            assert (
                await login(client, "storeless", password="wrong password 1")
            ).status_code == 400
        assert (await login(client, "storeless")).status_code == 429


async def test_with_no_counter_reachable_logins_fail_closed_with_503(auth_settings: Any) -> None:
    from auth_server.ratelimit import AttemptCounter
    from tests.integration.auth.conftest import login, register
    from tests.integration.sessions.conftest import running_app

    class Unreachable:
        async def incr(self, *args: Any, **kw: Any) -> int:
            raise ConnectionError("no counter store")

        async def get_expiry(self, *args: Any, **kw: Any) -> float:
            raise ConnectionError("no counter store")

        async def undo(self, *args: Any, **kw: Any) -> None:
            raise ConnectionError("no counter store")

        async def clear(self, *args: Any, **kw: Any) -> None:
            raise ConnectionError("no counter store")

        async def aclose(self) -> None:
            pass

    async with running_app(auth_settings) as client:
        await register(client, "storeless")
        throttle = client.app.state.auth.throttle  # type: ignore[attr-defined]
        throttle._counter = AttemptCounter(Unreachable())
        response = await login(client, "storeless")
        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"
        assert response.headers["Retry-After"] == "5"
        assert response.headers["Cache-Control"] == "no-store"
        sign_up = await client.post(
            "/users",
            json={"username": "newbie", "email": "newbie@example.com", "password": PASSWORD},
        )
        assert sign_up.status_code == 503
        assert sign_up.headers["content-type"].startswith("application/problem+json")
