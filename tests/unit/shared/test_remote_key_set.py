"""RemoteKeySet (respx): discovery, cache lifetime, ETag, cooldown, the unknown-kid flood,
stale-if-error, persistence to disk, size and time limits, key rotation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.jwks import RemoteKeySet
from shared.verification import TokenVerifier
from tests.unit.shared.conftest import AUDIENCE, ISSUER, RecordingMetrics, TokenFactory

META_URL = f"{ISSUER}/.well-known/oauth-authorization-server"
JWKS_URL = f"{ISSUER}/.well-known/jwks.json"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    return (
        json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        | {"kid": kid, "use": "sig"}
        | extra
    )


@pytest.fixture
def mock() -> Any:
    with respx.mock(assert_all_called=False) as router:
        router.get(META_URL).respond(
            json={"issuer": ISSUER, "jwks_uri": JWKS_URL, "token_endpoint": f"{ISSUER}/token"}
        )
        yield router


def make_set(clock: Clock, http: httpx.AsyncClient, **kw: Any) -> RemoteKeySet:
    options: dict[str, Any] = {"min_refresh": 10, "cache_floor": 60, "clock": clock} | kw
    return RemoteKeySet(ISSUER, http=http, **options)


async def test_keys_are_cached_for_max_age_and_revalidated_with_etag(
    mock: Any, rsa_key: rsa.RSAPrivateKey
) -> None:
    route = mock.get(JWKS_URL)
    route.side_effect = [
        httpx.Response(
            200,
            json={"keys": [jwk(rsa_key, "k1")]},
            headers={"Cache-Control": "max-age=300", "ETag": '"v1"'},
        ),
        httpx.Response(304, headers={"Cache-Control": "max-age=300", "ETag": '"v1"'}),
    ]
    clock = Clock()
    async with httpx.AsyncClient() as http:
        keys = make_set(clock, http)
        assert (await keys.get_key("k1")) is not None
        clock.now += 299
        assert (await keys.get_key("k1")) is not None
        assert route.call_count == 1
        clock.now += 2
        # Expired: the known set is still served while a refresh runs beside the request.
        assert (await keys.get_key("k1")) is not None
        await asyncio.sleep(0.01)
        assert route.call_count == 2
        assert route.calls[1].request.headers["If-None-Match"] == '"v1"'
        assert keys.metadata is not None and keys.metadata["token_endpoint"] == f"{ISSUER}/token"


async def test_a_short_max_age_is_raised_to_the_floor(
    mock: Any, rsa_key: rsa.RSAPrivateKey
) -> None:
    route = mock.get(JWKS_URL).respond(
        json={"keys": [jwk(rsa_key, "k1")]}, headers={"Cache-Control": "max-age=1"}
    )
    clock = Clock()
    async with httpx.AsyncClient() as http:
        keys = make_set(clock, http, cache_floor=60)
        await keys.get_key("k1")
        clock.now += 30
        await keys.get_key("k1")
        assert route.call_count == 1


async def test_forty_unknown_kids_cause_at_most_three_fetches(
    mock: Any, rsa_key: rsa.RSAPrivateKey
) -> None:
    route = mock.get(JWKS_URL).respond(
        json={"keys": [jwk(rsa_key, "k1")]}, headers={"Cache-Control": "max-age=300"}
    )
    clock = Clock()
    async with httpx.AsyncClient() as http:
        keys = make_set(clock, http)
        results = await asyncio.gather(*(keys.get_key(f"made-up-{i}") for i in range(40)))
        assert results == [None] * 40
        assert route.call_count <= 3
        # Within the cooldown, more made-up kids cause nothing at all (negative cache + cooldown).
        before = route.call_count
        await asyncio.gather(*(keys.get_key(f"other-{i}") for i in range(40)))
        assert route.call_count == before


async def test_a_new_kid_is_found_after_one_refetch(
    mock: Any, rsa_key: rsa.RSAPrivateKey, attacker_key: rsa.RSAPrivateKey
) -> None:
    route = mock.get(JWKS_URL)
    route.side_effect = [
        httpx.Response(
            200, json={"keys": [jwk(rsa_key, "old")]}, headers={"Cache-Control": "max-age=300"}
        ),
        httpx.Response(
            200,
            json={"keys": [jwk(rsa_key, "old"), jwk(attacker_key, "new")]},
            headers={"Cache-Control": "max-age=300"},
        ),
    ]
    clock = Clock()
    async with httpx.AsyncClient() as http:
        keys = make_set(clock, http)
        assert await keys.get_key("old") is not None
        clock.now += 11  # past the cooldown
        assert await keys.get_key("new") is not None
        assert route.call_count == 2


async def test_stale_keys_keep_verifying_during_an_outage(
    mock: Any, rsa_key: rsa.RSAPrivateKey, make_token: TokenFactory
) -> None:
    route = mock.get(JWKS_URL)
    route.side_effect = [
        httpx.Response(
            200, json={"keys": [jwk(rsa_key, "key-1")]}, headers={"Cache-Control": "max-age=60"}
        ),
        httpx.ConnectError("auth server down"),
        httpx.Response(200, text="<html>garbage</html>"),
    ]
    clock = Clock()
    metrics = RecordingMetrics()
    async with httpx.AsyncClient() as http:
        keys = make_set(clock, http, metrics=metrics)
        verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, key_source=keys)
        assert (await verifier.verify(make_token())).sub == "user-1"
        assert metrics.counts["stale",] == 0 and metrics.counts["jwks", "ok"] == 1
        clock.now += 61
        assert (await verifier.verify(make_token())).sub == "user-1"
        await asyncio.sleep(0.01)  # the refresh beside the request fails: connect error
        clock.now += 10
        assert (await verifier.verify(make_token())).sub == "user-1"
        await asyncio.sleep(0.01)  # and again: garbage
        assert (await verifier.verify(make_token())).sub == "user-1"
        assert route.call_count == 3
        assert metrics.counts["stale",] == 2 and metrics.counts["jwks", "error"] == 2


async def test_the_last_good_set_survives_a_restart_during_an_outage(
    mock: Any, rsa_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    mock.get(JWKS_URL).respond(json={"keys": [jwk(rsa_key, "k1")]})
    path = tmp_path / "jwks.json"
    async with httpx.AsyncClient() as http:
        first = make_set(Clock(), http, cache_path=path)
        await first.start()
        await first.aclose()
    assert path.exists()
    mock.get(JWKS_URL).mock(side_effect=httpx.ConnectError("down"))
    mock.get(META_URL).mock(side_effect=httpx.ConnectError("down"))
    async with httpx.AsyncClient() as http:
        restarted = make_set(Clock(), http, cache_path=path)
        await restarted.start()
        assert restarted.ready
        assert await restarted.get_key("k1") is not None
        await restarted.aclose()


async def test_a_persisted_set_for_another_issuer_is_ignored(
    mock: Any, tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(
        json.dumps({"issuer": "https://other.example", "jwks": {"keys": [jwk(rsa_key, "k1")]}})
    )
    mock.get(JWKS_URL).mock(side_effect=httpx.ConnectError("down"))
    async with httpx.AsyncClient() as http:
        keys = make_set(Clock(), http, cache_path=path)
        await keys.start()
        assert not keys.ready and await keys.get_key("k1") is None
        await keys.aclose()


async def test_an_oversized_jwks_is_refused(mock: Any, rsa_key: rsa.RSAPrivateKey) -> None:
    big = {"keys": [jwk(rsa_key, "k1")], "padding": "x" * 5000}
    mock.get(JWKS_URL).respond(json=big)
    async with httpx.AsyncClient() as http:
        keys = make_set(Clock(), http, max_bytes=2048)
        assert await keys.get_key("k1") is None
        assert not keys.ready


async def test_a_slow_auth_server_times_out(mock: Any) -> None:
    mock.get(JWKS_URL).mock(side_effect=httpx.ReadTimeout("slow"))
    async with httpx.AsyncClient() as http:
        keys = make_set(Clock(), http, timeout=0.1)
        assert await keys.get_key("k1") is None


async def test_metadata_naming_another_issuer_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    with respx.mock(assert_all_called=False) as router:
        router.get(META_URL).respond(
            json={"issuer": "https://evil.example", "jwks_uri": "https://evil.example/jwks"}
        )
        evil = router.get("https://evil.example/jwks").respond(json={"keys": [jwk(rsa_key, "k1")]})
        async with httpx.AsyncClient() as http:
            keys = make_set(Clock(), http)
            assert await keys.get_key("k1") is None
        assert evil.call_count == 0


async def test_encryption_keys_and_unparseable_keys_are_skipped(
    mock: Any, rsa_key: rsa.RSAPrivateKey
) -> None:
    mock.get(JWKS_URL).respond(
        json={
            "keys": [
                jwk(rsa_key, "enc", use="enc"),
                {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
                jwk(rsa_key, "sig"),
            ]
        }
    )
    async with httpx.AsyncClient() as http:
        keys = make_set(Clock(), http)
        assert await keys.get_key("sig") is not None
        assert await keys.get_key("enc") is None
        assert await keys.get_key("broken") is None


async def test_concurrent_first_fetches_are_merged_into_one(
    mock: Any, rsa_key: rsa.RSAPrivateKey
) -> None:
    route = mock.get(JWKS_URL).respond(json={"keys": [jwk(rsa_key, "k1")]})
    async with httpx.AsyncClient() as http:
        keys = make_set(Clock(), http)
        found = await asyncio.gather(*(keys.get_key("k1") for _ in range(20)))
        assert all(k is not None for k in found)
        assert route.call_count == 1


async def test_a_hanging_auth_server_never_makes_a_request_wait(
    mock: Any, rsa_key: rsa.RSAPrivateKey
) -> None:
    import time

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(1)
        return httpx.Response(504)

    route = mock.get(JWKS_URL)
    route.side_effect = [httpx.Response(200, json={"keys": [jwk(rsa_key, "k1")]}), hang]
    clock = Clock()
    async with httpx.AsyncClient() as http:
        keys = make_set(clock, http)
        await keys.get_key("k1")
        clock.now += 120
        started = time.perf_counter()
        assert await keys.get_key("k1") is not None
        assert time.perf_counter() - started < 0.5
        await keys.aclose()
