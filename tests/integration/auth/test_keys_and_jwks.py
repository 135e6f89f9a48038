"""Signing keys: lifecycle, concurrency, encryption at rest; the JWKS document and its caching."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import delete, select, update

from auth_server.keys import crypto
from auth_server.keys.store import KeyNotFound, KeyStore, RotationRefused
from auth_server.persistence.models import AuditEvent, Revocation, SigningKey
from auth_server.settings import AuthSettings
from shared.service.db import create_engine, create_session_maker

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.fixture
async def session_maker(auth_settings: AuthSettings) -> AsyncIterator[Any]:
    engine = create_engine(auth_settings.database_url)
    yield create_session_maker(engine)
    await engine.dispose()


@pytest.fixture
async def store(session_maker: Any, auth_settings: AuthSettings) -> KeyStore:
    # jwks_max_age=0: the next key may be promoted at once.
    key_store = KeyStore(session_maker, auth_settings.model_copy(update={"jwks_max_age": 0}))
    await key_store.ensure_keys()
    return key_store


async def _states(session_maker: Any) -> dict[str, str]:
    async with session_maker() as db:
        return {k.kid: k.state for k in (await db.scalars(select(SigningKey))).all()}


async def test_ensure_keys_is_idempotent_and_safe_when_replicas_race(
    session_maker: Any, auth_settings: AuthSettings
) -> None:
    async with session_maker() as db:  # the template database comes with keys: start without
        await db.execute(delete(SigningKey))
        await db.commit()
    assert await _states(session_maker) == {}
    stores = [KeyStore(session_maker, auth_settings) for _ in range(4)]
    await asyncio.gather(*(s.ensure_keys() for s in stores))
    await stores[0].ensure_keys()
    states = sorted((await _states(session_maker)).values())
    assert states == ["active", "next"]


async def test_rotation_lifecycle_next_active_retiring_retired(
    store: KeyStore, session_maker: Any
) -> None:
    before = await _states(session_maker)
    active = next(k for k, s in before.items() if s == "active")
    nxt = next(k for k, s in before.items() if s == "next")
    result = await store.rotate()
    assert (
        result.active_kid == nxt
        and result.previous_kid == active
        and result.previous_state == "retiring"
    )
    after = await _states(session_maker)
    assert (
        after[nxt] == "active" and after[active] == "retiring" and after[result.next_kid] == "next"
    )
    assert (await store.signing_key()).kid == nxt
    jwks, _ = await store.jwks()
    assert {k["kid"] for k in jwks["keys"]} == {active, nxt, result.next_kid}

    async with session_maker() as db:
        await db.execute(
            update(SigningKey)
            .where(SigningKey.kid == active)
            .values(publish_until=dt.datetime.now(dt.UTC))
        )
        await db.commit()
    assert await store.retire_expired() == 1
    assert (await _states(session_maker))[active] == "retired"
    assert active not in {k["kid"] for k in (await store.jwks())[0]["keys"]}


async def test_a_next_key_younger_than_the_jwks_lifetime_is_not_promoted(
    session_maker: Any, auth_settings: AuthSettings
) -> None:
    store = KeyStore(session_maker, auth_settings)  # jwks_max_age = 300 s
    await store.ensure_keys()
    # The next key made with the first active key has been in every JWKS: it may sign at once.
    await store.rotate()
    # The next key this rotation created is new to verifiers: it must wait one cache lifetime.
    with pytest.raises(RotationRefused, match="cache lifetime"):
        await store.rotate()


async def test_emergency_rotation_retires_the_active_key_and_feeds_the_revocation(
    session_maker: Any, auth_settings: AuthSettings
) -> None:
    from auth_server.revocations import RevocationPublisher
    from auth_server.state import build_key_store

    # The young next key is promoted anyway.
    store = build_key_store(auth_settings, session_maker, RevocationPublisher(None, "unused"))
    await store.ensure_keys()
    old = (await store.signing_key()).kid
    result = await store.rotate(emergency=True)
    assert result.previous_state == "retired"
    assert (await _states(session_maker))[old] == "retired"
    assert await store.get_key(old) is None
    async with session_maker() as db:
        event = (await db.scalars(select(Revocation))).one()
        audit = (await db.scalars(select(AuditEvent))).one()
    assert (event.kind, event.value) == ("kid", old)
    assert audit.type == "key_retired" and audit.detail == {"kid": old}


async def test_retire_refuses_the_active_and_next_keys_and_unknown_kids(
    store: KeyStore, session_maker: Any
) -> None:
    states = await _states(session_maker)
    for kid, state in states.items():
        with pytest.raises(RotationRefused):
            await store.retire(kid)
        assert state in ("active", "next")
    with pytest.raises(KeyNotFound):
        await store.retire("no-such-kid")
    result = await store.rotate()
    assert result.previous_kid is not None
    await store.retire(result.previous_kid)
    assert (await _states(session_maker))[result.previous_kid] == "retired"


async def test_private_keys_are_encrypted_at_rest(
    store: KeyStore, session_maker: Any, auth_settings: AuthSettings
) -> None:
    handle = await store.signing_key()
    der = handle.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    async with session_maker() as db:
        row = await db.get(SigningKey, handle.kid)
    assert row is not None
    assert der not in row.private_key_encrypted and der[40:80] not in row.private_key_encrypted
    with pytest.raises(crypto.KeyDecryptionError):
        crypto.decrypt_private_key(row.private_key_encrypted, b"\x00" * 32, handle.kid)
    with pytest.raises(crypto.KeyDecryptionError):  # the kid is bound as associated data
        crypto.decrypt_private_key(
            row.private_key_encrypted, auth_settings.key_encryption_secret(), "other"
        )
    assert set(row.public_jwk) == {"kty", "use", "alg", "kid", "n", "e"}


async def test_jwks_endpoint_publishes_public_parts_with_caching_headers(
    auth_client: httpx.AsyncClient, auth_settings: AuthSettings
) -> None:
    response = await auth_client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert len(keys) == 2  # active and next
    for key in keys:
        assert not PRIVATE_MEMBERS & key.keys()
        assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert response.headers["Cache-Control"] == f"public, max-age={auth_settings.jwks_max_age}"
    etag = response.headers["ETag"]
    for validator in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = await auth_client.get(
            "/.well-known/jwks.json", headers={"If-None-Match": validator}
        )
        assert cached.status_code == 304, validator
        assert cached.content == b"" and cached.headers["ETag"] == etag
    fresh = await auth_client.get("/.well-known/jwks.json", headers={"If-None-Match": '"stale"'})
    assert fresh.status_code == 200


async def test_every_key_the_jwks_lists_matches_its_rfc7638_kid(
    auth_client: httpx.AsyncClient,
) -> None:
    import jwt

    for key in (await auth_client.get("/.well-known/jwks.json")).json()["keys"]:
        public = jwt.PyJWK.from_dict(key).key
        assert crypto.thumbprint_kid(public) == key["kid"]


async def test_the_schedule_rotates_only_when_the_active_key_is_old_enough(
    store: KeyStore, session_maker: Any, auth_settings: AuthSettings
) -> None:
    from auth_server.keys.rotation import rotate_if_due

    monthly = auth_settings.model_copy(update={"key_rotation_days": 30, "jwks_max_age": 0})
    assert await rotate_if_due(store, monthly) is False
    async with session_maker() as db:
        await db.execute(
            update(SigningKey)
            .where(SigningKey.state == "active")
            .values(activated_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=31))
        )
        await db.commit()
    assert (
        await rotate_if_due(store, auth_settings.model_copy(update={"key_rotation_days": 0}))
        is False
    )
    before = (await store.signing_key()).kid
    assert await rotate_if_due(store, monthly) is True
    assert (await store.signing_key()).kid != before
    assert sorted((await _states(session_maker)).values()) == ["active", "next", "retiring"]
