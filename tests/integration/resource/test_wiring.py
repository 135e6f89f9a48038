"""How the resource server is put together: readiness before keys, settings, and the CLI."""

from __future__ import annotations

from typing import Any

import httpx
from typer.testing import CliRunner

from resource_server.cli import app as cli
from resource_server.main import create_app
from tests.e2e.servers import free_port


async def test_not_ready_until_a_key_set_is_loaded(resource_settings: Any) -> None:
    settings = resource_settings.model_copy(
        update={"auth_server_url": f"http://127.0.0.1:{free_port()}"}
    )
    app = create_app(settings, revocation_feed=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {
                "key_set": False,
                "revocations": True,
                "database": True,
            }
            assert (await client.get("/healthz")).status_code == 200
            # No keys: every token is refused (fail closed), never a 500.
            me = await client.get("/me", headers={"Authorization": "Bearer a.b.c"})
            assert me.status_code == 401


async def test_transparent_refresh_can_be_turned_off(resource_settings: Any) -> None:
    app = create_app(
        resource_settings.model_copy(update={"transparent_refresh": False}), revocation_feed=False
    )
    async with app.router.lifespan_context(app):
        assert app.state.resource.refresher is None
    app = create_app(resource_settings, revocation_feed=False)
    async with app.router.lifespan_context(app):
        assert app.state.resource.refresher is not None


def test_cli_migrate_and_bad_arguments(resource_settings: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("RESOURCE_DATABASE_URL", resource_settings.database_url)
    runner = CliRunner()
    result = runner.invoke(cli, ["migrate"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["serve", "--port", "x"]).exit_code == 2
    assert runner.invoke(cli, ["bogus"]).exit_code == 2
    for leeway in ("-5", "120"):  # more than the auth server's 60 s margin is refused too
        monkeypatch.setenv("RESOURCE_LEEWAY", leeway)
        bad = runner.invoke(cli, ["migrate"])
        assert bad.exit_code == 1 and "RESOURCE_LEEWAY" in bad.output


async def test_an_unreachable_database_is_503_not_500(resource_settings: Any) -> None:
    import time

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    from shared.keys import StaticKeySet, VerificationKey

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings = resource_settings.model_copy(
        update={"database_url": f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone"}
    )
    app = create_app(
        settings,
        key_source=StaticKeySet([VerificationKey("k", key.public_key(), "RS256")]),
        revocation_feed=False,
    )
    now = int(time.time())
    claims = {
        "iss": settings.issuer,
        "sub": "a",
        "aud": settings.audience,
        "exp": now + 60,
        "iat": now,
        "jti": "j",
        "client_id": "web",
        "scope": "notes:read notes:write",
    }
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k", "typ": "at+jwt"})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            listed = await client.get("/notes", headers={"Authorization": f"Bearer {token}"})
            assert listed.status_code == 503
            assert listed.headers["Retry-After"] == "5"
            assert listed.headers["content-type"].startswith("application/problem+json")
            # What needs no database keeps working.
            assert (
                await client.get("/me", headers={"Authorization": f"Bearer {token}"})
            ).status_code == 200


async def test_not_ready_while_the_database_is_away(resource_settings: Any, tmp_path: Any) -> None:
    """Issue 12: the resource server said ready while its database was down."""
    from shared.keys import StaticKeySet

    gone = resource_settings.model_copy(
        update={"database_url": f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none"}
    )
    app = create_app(gone, key_source=StaticKeySet([]), revocation_feed=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] is False
