"""Issue 8, in the library: no flood, no restart, no stale key set and no leeway brings a revoked
token back; the feed client and the key set stay bounded on hostile input."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.claims import AccessTokenClaims
from shared.denylist import Denylist
from shared.errors import KeySetStale, TokenError
from shared.jwks import RemoteKeySet
from shared.revocation_feed import RevocationFeedClient
from shared.verification import TokenVerifier
from tests.unit.shared.conftest import AUDIENCE, ISSUER, TokenFactory, claims

FEED_URL = f"{ISSUER}/revocations"
META_URL = f"{ISSUER}/.well-known/oauth-authorization-server"
JWKS_URL = f"{ISSUER}/.well-known/jwks.json"
DAY = 86_400.0


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def token(**overrides: object) -> AccessTokenClaims:
    values: dict[str, object] = {"iat": 999_000, "exp": 1_001_000} | overrides
    return AccessTokenClaims.from_payload(claims(**values))


def event(kind: str, value: str, expires_at: float, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "value": value, "not_before": None, "expires_at": expires_at} | extra


# -- the denylist under a flood -----------------------------------------------------------------


def test_reapplying_one_event_does_not_grow_the_list() -> None:
    clock = Clock()
    deny = Denylist(clock=clock)
    same = event("jti", "j1", clock.now + 600, revoked_at=clock.now - 5)
    for _ in range(200_000):
        deny.apply(same)
    assert len(deny) == 1
    assert deny.heap_size == 1


def test_a_full_list_refuses_rather_than_forgets() -> None:
    """The review's flood: at 50 entries, 51 revocations of the attacker's own sessions evicted
    the victim's; the stolen token verified again."""
    clock = Clock()
    deny = Denylist(max_entries=50, clock=clock)
    stolen = token(sid="victim", iat=int(clock.now) - 100)
    deny.apply(event("sid", "victim", clock.now + 900, revoked_at=clock.now - 10))
    for i in range(51):
        clock.now += 1
        deny.apply(event("sid", f"attacker-{i}", clock.now + 900, revoked_at=clock.now))
    assert len(deny) <= 50
    assert deny.check(stolen, None) is not None  # still refused: a floor covers what was evicted
    # A token issued after the flood, and not revoked, keeps working.
    fresh = token(sid="someone-new", iat=int(clock.now) + 1)
    assert deny.check(fresh, None) is None
    # The attackers' own ended sessions stay refused too.
    assert deny.check(token(sid="attacker-50", iat=int(clock.now) - 1), None) is not None


def test_the_eviction_floor_only_reaches_tokens_issued_before_the_evicted_revocations() -> None:
    clock = Clock()
    deny = Denylist(max_entries=2, clock=clock)
    deny.apply(event("jti", "a", clock.now + 100, revoked_at=clock.now))
    deny.apply(event("jti", "b", clock.now + 200, revoked_at=clock.now + 50))
    deny.apply(event("jti", "c", clock.now + 300, revoked_at=clock.now + 60))  # evicts "a"
    assert deny.check(token(jti="unrelated", iat=int(clock.now) - 1), None) is not None
    assert deny.check(token(jti="unrelated", iat=int(clock.now) + 1), None) is None


def test_retired_keys_are_never_forgotten_nor_evicted() -> None:
    clock = Clock()
    deny = Denylist(max_entries=3, clock=clock)
    deny.apply(event("kid", "stolen-key", clock.now + 960, revoked_at=clock.now))
    for i in range(10):
        deny.apply(event("jti", f"j{i}", clock.now + 10 + i, revoked_at=clock.now))
    clock.now += 30 * DAY
    assert deny.kid_revoked("stolen-key")
    assert deny.check(token(iat=int(clock.now)), "stolen-key") == "signing key retired"


def test_entries_are_kept_for_the_verifiers_leeway_past_their_expiry() -> None:
    """The review: with a leeway of 120 s, a revoked token that expired 65 s ago was accepted."""
    clock = Clock()
    deny = Denylist(clock=clock, leeway=120)
    revoked = token(sid="s1", exp=int(clock.now) + 10)
    deny.apply(event("sid", "s1", clock.now + 10 + 60, revoked_at=clock.now))
    clock.now += 10 + 65  # expired 65 s ago: inside the leeway
    assert deny.check(revoked, None) == "session ended"
    clock.now += 120  # past the event's time and the leeway: gone
    assert deny.check(revoked, None) is None


# -- the revocation state survives a restart ----------------------------------------------------


def test_the_state_is_saved_atomically_and_loaded_on_start(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "revocations.json"
    before = Denylist(clock=clock)
    before.apply(event("sid", "s1", clock.now + 600, revoked_at=clock.now))
    before.apply(event("user", "u1", clock.now + 600, not_before=clock.now - 5))
    before.apply(event("kid", "k1", clock.now + 600))
    before.save(path, cursor="42")
    assert not list(tmp_path.glob("*.tmp"))  # written aside, then renamed over

    after = Denylist(clock=clock)
    assert after.load(path) == "42"
    assert after.check(token(sid="s1"), None) == "session ended"
    assert after.check(token(sub="u1", iat=int(clock.now) - 100), None) == "session ended"
    assert after.kid_revoked("k1")


def test_a_corrupt_state_file_is_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "revocations.json"
    path.write_text('{"entries": [[')
    deny = Denylist()
    assert deny.load(path) is None and len(deny) == 0


async def test_the_feed_client_is_not_synced_until_it_loaded_or_read_the_feed(
    tmp_path: Path,
) -> None:
    clock = Clock(time.time())
    path = tmp_path / "revocations.json"
    saved = Denylist(clock=clock)
    saved.apply(event("sid", "ended-before-restart", clock.now + 600, revoked_at=clock.now))
    saved.save(path, cursor="7")

    deny = Denylist(clock=clock)
    with respx.mock() as router:
        route = router.get(FEED_URL).mock(side_effect=httpx.ConnectError("auth server down"))
        async with httpx.AsyncClient() as http:
            feed = RevocationFeedClient(
                deny, http=http, feed_url=FEED_URL, poll_interval=60, state_path=path
            )
            assert not feed.synced
            await feed.start()  # the auth server is down: the saved state is all there is
            await asyncio.sleep(0.05)
            assert feed.synced and feed.cursor == "7"
            assert deny.check(token(sid="ended-before-restart"), None) == "session ended"
            await feed.aclose()
        assert route.calls[0].request.url.params["since"] == "7"


async def test_applied_events_are_saved_with_the_cursor(tmp_path: Path) -> None:
    now = time.time()
    path = tmp_path / "revocations.json"
    with respx.mock() as router:
        router.get(FEED_URL).respond(
            json={"events": [event("jti", "j1", now + 60, id=5)], "cursor": "5", "has_more": False}
        )
        async with httpx.AsyncClient() as http:
            feed = RevocationFeedClient(
                Denylist(), http=http, feed_url=FEED_URL, poll_interval=60, state_path=path
            )
            await feed.poll_once()
    restored = Denylist()
    assert restored.load(path) == "5"
    assert restored.check(token(jti="j1", exp=int(now) + 30), None) == "token revoked"


async def test_a_verifier_refuses_tokens_until_the_revocation_state_is_known(
    key_set: object, make_token: TokenFactory
) -> None:
    deny = Denylist(synced=False)
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, key_source=key_set, denylist=deny)  # type: ignore[arg-type]
    with pytest.raises(TokenError) as refused:
        await verifier.verify(make_token())
    assert refused.value.reason == "revocations_unknown"
    deny.synced = True
    assert (await verifier.verify(make_token())).sub == "user-1"


# -- the feed client and the key set on hostile input ---------------------------------------------


async def test_a_feed_whose_cursor_does_not_move_is_read_once_per_poll() -> None:
    """The review: more than a page of events younger than the settle time kept the cursor in
    place with has_more, and one poll made 100 GETs."""
    now = time.time()
    page = {"events": [event("jti", "young", now + 60)], "cursor": "0", "has_more": True}
    with respx.mock() as router:
        route = router.get(FEED_URL).respond(json=page)
        async with httpx.AsyncClient() as http:
            feed = RevocationFeedClient(Denylist(), http=http, feed_url=FEED_URL, poll_interval=60)
            feed.cursor = "0"  # where the young events keep it
            await feed.poll_once()
            assert route.call_count == 1
            await feed.poll_once()
            assert route.call_count == 2


async def test_the_unknown_kid_cache_is_bounded() -> None:
    with respx.mock(assert_all_called=False) as router:
        router.get(META_URL).respond(json={"issuer": ISSUER, "jwks_uri": JWKS_URL})
        router.get(JWKS_URL).respond(json={"keys": []})
        async with httpx.AsyncClient() as http:
            keys = RemoteKeySet(ISSUER, http=http, min_refresh=3600, negative_cache_size=1000)
            for i in range(5000):
                assert await keys.get_key(f"forged-{i}") is None
            assert keys.unknown_kids_cached <= 1000


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    return json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())) | {"kid": kid}


async def test_a_key_set_too_long_without_a_successful_fetch_is_refused(
    rsa_key: rsa.RSAPrivateKey, make_token: TokenFactory, tmp_path: Path
) -> None:
    """The review: after 30 simulated days of failed fetches, the key set was still served."""
    wall = Clock(time.time())
    monotonic = Clock(1000.0)
    with respx.mock(assert_all_called=False) as router:
        router.get(META_URL).respond(json={"issuer": ISSUER, "jwks_uri": JWKS_URL})
        route = router.get(JWKS_URL)
        route.side_effect = [
            httpx.Response(200, json={"keys": [_jwk(rsa_key, "key-1")]}),
            *[httpx.ConnectError("down")] * 50,
        ]
        async with httpx.AsyncClient() as http:
            keys = RemoteKeySet(
                ISSUER,
                http=http,
                clock=monotonic,
                wall_clock=wall,
                max_staleness=DAY,
                cache_path=tmp_path / "jwks.json",
            )
            verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, key_source=keys)
            assert (await verifier.verify(make_token())).sub == "user-1"
            wall.now += DAY - 60
            monotonic.now += DAY - 60
            assert (await verifier.verify(make_token())).sub == "user-1"  # stale, but allowed
            assert keys.ready
            wall.now += 120
            monotonic.now += 120
            with pytest.raises(TokenError) as refused:
                await verifier.verify(make_token())
            assert refused.value.reason == "keys_stale"
            assert not keys.ready

            # A restart reads the saved set with its age: still too old.
            restarted = RemoteKeySet(
                ISSUER,
                http=http,
                clock=monotonic,
                wall_clock=wall,
                max_staleness=DAY,
                cache_path=tmp_path / "jwks.json",
            )
            await restarted.start()
            assert not restarted.ready
            with pytest.raises(KeySetStale):
                await restarted.get_key("key-1")
            await restarted.aclose()
