"""Issue 9's denial-of-service and hostile-input findings at the auth server: no 500 for any input,
no hashing work for made-up client ids, bodies capped before parsing, one username form."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select, update

from auth_server.oauth.clients import SECRET_SCHEME
from auth_server.persistence.models import Client
from auth_server.settings import AuthSettings
from tests.integration.auth.conftest import PASSWORD, login, register


def count_hashing(app: Any) -> list[int]:
    passwords = app.state.auth.passwords
    calls = [0]
    verify, hash_ = passwords.verify, passwords.hash

    async def counting_verify(password: str, stored: str | None) -> tuple[bool, str | None]:
        calls[0] += 1
        return await verify(password, stored)

    async def counting_hash(password: str) -> str:
        calls[0] += 1
        return await hash_(password)

    passwords.verify, passwords.hash = counting_verify, counting_hash
    return calls


@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect"])
async def test_an_unknown_client_id_costs_no_hashing(
    auth_app: Any, auth_client: httpx.AsyncClient, path: str
) -> None:
    """The review: every unknown client_id cost a dummy Argon2 (117 ms against 5.5 ms)."""
    calls = count_hashing(auth_app)
    form = {"grant_type": "client_credentials", "token": "x"}
    basic = await auth_client.post(path, data=form, auth=("made-up", "secret"))
    posted = await auth_client.post(
        path, data=form | {"client_id": "made-up", "client_secret": "secret"}
    )
    assert basic.status_code == 401 and basic.json()["error"] == "invalid_client"
    # A refused credential is a 401 either way (issue 16 item 9), the challenge only after Basic.
    assert posted.status_code == 401 and posted.json()["error"] == "invalid_client"
    assert "WWW-Authenticate" not in posted.headers
    assert calls[0] == 0


async def test_client_secrets_are_stored_as_sha256_and_checked_without_argon2(
    auth_app: Any,
    auth_client: httpx.AsyncClient,
    confidential_client: tuple[str, str],
    db: Any,
) -> None:
    stored = await db.scalar(select(Client.secret_hash).where(Client.id == "backend"))
    await db.rollback()  # end the read: on SQLite an open transaction holds the write lock
    assert stored.startswith(SECRET_SCHEME) and confidential_client[1] not in stored
    calls = count_hashing(auth_app)
    ok = await auth_client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=confidential_client
    )
    bad = await auth_client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=("backend", "wrong")
    )
    assert ok.status_code == 200 and bad.status_code == 401
    assert calls[0] == 0
    # A secret stored by an earlier release (Argon2) still authenticates.
    legacy = await auth_app.state.auth.passwords.hash(confidential_client[1])
    await db.execute(update(Client).where(Client.id == "backend").values(secret_hash=legacy))
    await db.commit()
    again = await auth_client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=confidential_client
    )
    assert again.status_code == 200


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/revocations", {"since": "²"}),
        ("/revocations", {"since": "١٢"}),  # Arabic-Indic digits: isdigit() says yes
        ("/revocations", {"since": "-1"}),
    ],
)
async def test_a_cursor_of_unicode_digits_is_a_400(
    auth_client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    """The review: str.isdigit() accepts "²", which int() refuses: 500 (unauthenticated)."""
    response = await auth_client.get(path, params=params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_an_admin_events_cursor_of_unicode_digits_is_a_400(
    auth_client: httpx.AsyncClient, admin_tokens: dict[str, Any]
) -> None:
    response = await auth_client.get(
        "/admin/events",
        params={"cursor": "²"},
        headers={"Authorization": f"Bearer {admin_tokens['access_token']}"},
    )
    assert response.status_code == 400


async def test_revoking_a_client_credentials_token_with_a_long_client_id_works(
    auth_app: Any, auth_client: httpx.AsyncClient
) -> None:
    """The review: on PostgreSQL a client id longer than 36 characters was written into
    audit_events.user_id: 500."""
    from auth_server.oauth.clients import create_client
    from shared.service.db import transaction

    long_id = "reporting-service-of-the-accounting-department"
    async with transaction(auth_app.state.auth.session_maker) as db:
        _, secret = await create_client(
            db,
            client_id=long_id,
            confidential=True,
            grant_types=["client_credentials"],
            scopes=["notes:read"],
        )
    assert secret is not None
    issued = await auth_client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=(long_id, secret)
    )
    token = issued.json()["access_token"]
    revoked = await auth_client.post("/revoke", data={"token": token}, auth=(long_id, secret))
    assert revoked.status_code == 200
    introspected = await auth_client.post(
        "/introspect", data={"token": token}, auth=(long_id, secret)
    )
    assert introspected.json() == {"active": False}


async def test_a_body_over_the_cap_is_refused_before_it_is_parsed(
    auth_client: httpx.AsyncClient,
) -> None:
    """The review: a 30 MiB POST /users grew the server by 91 MiB before its 422."""
    big = b'{"username": "' + b"a" * (70 * 1024) + b'"}'
    declared = await auth_client.post(
        "/users", content=big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.headers["content-type"].startswith("application/problem+json")

    async def chunks() -> Any:  # no Content-Length: counted as it streams
        for _ in range(100):
            yield b"x" * 1024

    streamed = await auth_client.post(
        "/users", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    form = await auth_client.post(
        "/token",
        content=b"grant_type=password&username=" + b"a" * (70 * 1024),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code in (413, 400)


async def test_a_username_that_case_folding_changes_logs_in_by_name(
    auth_client: httpx.AsyncClient,
) -> None:
    """The review: `ΐota` registered, then couldn't log in by name (sign-up and login
    normalized differently)."""
    user = await register(auth_client, "ΐota", email="iota@example.com")
    response = await login(auth_client, "ΐota")
    assert response.status_code == 200, response.text
    sub = jwt.decode(response.json()["access_token"], options={"verify_signature": False})["sub"]
    assert sub == user["id"]


def test_the_engine_never_logs_statement_parameters(auth_settings: AuthSettings) -> None:
    from shared.service.db import create_engine

    engine = create_engine(auth_settings.database_url)
    assert engine.sync_engine.hide_parameters is True


def test_the_development_key_encryption_file_is_created_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Created with its mode, never written first and chmod'ed after."""

    def no_chmod(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the file was chmod'ed after being written")

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(Path, "chmod", no_chmod)
    old_umask = os.umask(0)
    try:
        settings = AuthSettings(_env_file=None, environment="development", var_dir=tmp_path)  # type: ignore[call-arg]
        first = settings.key_encryption_secret()
    finally:
        os.umask(old_umask)
    path = tmp_path / "key-encryption-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.key_encryption_secret() == first  # read back, not made again


async def test_the_revocation_feed_is_for_confidential_clients_in_production(
    auth_settings: AuthSettings,
) -> None:
    from auth_server.main import create_app
    from auth_server.oauth.clients import create_client
    from shared.service.db import transaction

    settings = auth_settings.model_copy(update={"revocation_feed_auth": "client"})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            anonymous = await client.get("/revocations")
            assert anonymous.status_code == 401
            assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
            async with transaction(app.state.auth.session_maker) as db:
                _, reader = await create_client(
                    db,
                    client_id="notes-api",
                    confidential=True,
                    grant_types=["client_credentials"],
                    scopes=["revocations:read"],
                )
                _, other = await create_client(
                    db,
                    client_id="reports",
                    confidential=True,
                    grant_types=["client_credentials"],
                    scopes=["notes:read"],
                )
            assert reader is not None and other is not None
            assert (await client.get("/revocations", auth=("notes-api", reader))).status_code == 200
            assert (await client.get("/revocations", auth=("reports", other))).status_code == 401
    assert AuthSettings(_env_file=None).feed_requires_client is False  # type: ignore[call-arg]
    production = AuthSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="production",
        issuer="https://auth.example.com",
        key_encryption_key="a-real-secret-of-at-least-32-characters!",
        cors_origins="https://notes.example.com",
    )
    assert production.feed_requires_client is True


async def test_a_password_with_nul_or_huge_fields_is_a_4xx(auth_client: httpx.AsyncClient) -> None:
    for body in (
        {"username": "nul\x00name", "email": "n@example.com", "password": PASSWORD},
        {"username": "okname", "email": "n\x00@example.com", "password": PASSWORD},
        {"username": "x" * 300, "email": "x@example.com", "password": PASSWORD},
    ):
        response = await auth_client.post("/users", json=body)
        assert response.status_code == 422, body


async def test_every_auth_response_carries_the_security_headers(
    auth_client: httpx.AsyncClient,
) -> None:
    responses = [
        await auth_client.get("/healthz"),
        await auth_client.get("/.well-known/jwks.json"),
        await auth_client.post("/token", data={"grant_type": "nope"}),
        await auth_client.get("/users/me"),
        await auth_client.get("/no-such-page"),
        await auth_client.get("/docs"),
    ]
    for response in responses:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"
    docs = responses[-1]
    assert docs.headers["content-type"].startswith("text/html")
    policy = docs.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert all("Content-Security-Policy" not in r.headers for r in responses[:-1])
