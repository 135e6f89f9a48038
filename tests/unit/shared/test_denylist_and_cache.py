"""The denylist and the verified-token cache: expiry, bounds, and their checks on the fast path."""

from __future__ import annotations

import time

from shared.claims import AccessTokenClaims
from shared.denylist import Denylist
from shared.errors import TokenError
from shared.token_cache import VerifiedTokenCache
from shared.verification import TokenVerifier
from tests.unit.shared.conftest import AUDIENCE, ISSUER, TokenFactory, claims


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def token_claims(**overrides: object) -> AccessTokenClaims:
    values: dict[str, object] = {"iat": 999_000, "exp": 1_001_000} | overrides
    return AccessTokenClaims.from_payload(claims(**values))


def test_each_kind_of_entry_revokes_until_it_expires() -> None:
    clock = Clock()
    deny = Denylist(clock=clock)
    subject = token_claims(jti="j1", sid="s1", sub="u1")
    assert deny.check(subject, "kid-1") is None
    deny.add_sid("s1", clock.now + 10)
    assert deny.check(subject, "kid-1") == "session ended"
    clock.now += 11
    assert deny.check(subject, "kid-1") is None
    deny.add_jti("j1", clock.now + 10)
    assert deny.check(subject, "kid-1") == "token revoked"
    deny.add_kid("kid-1", clock.now + 20)
    assert deny.check(token_claims(jti="other"), "kid-1") == "signing key retired"


def test_a_user_not_before_time_revokes_only_older_tokens() -> None:
    clock = Clock()
    deny = Denylist(clock=clock)
    deny.add_user_not_before("u1", not_before=999_500, until=clock.now + 100)
    assert deny.check(token_claims(sub="u1", iat=999_400), None) == "session ended"
    assert deny.check(token_claims(sub="u1", iat=999_600), None) is None
    assert deny.check(token_claims(sub="u2", iat=999_400), None) is None
    # Whole seconds: a token issued in the logout's own second is left to its `sid` event.
    deny.add_user_not_before("u3", not_before=999_700.6, until=clock.now + 100)
    assert deny.check(token_claims(sub="u3", iat=999_699), None) == "session ended"
    assert deny.check(token_claims(sub="u3", iat=999_700), None) is None


def test_entries_already_expired_are_not_added_and_the_list_stays_bounded() -> None:
    clock = Clock()
    deny = Denylist(max_entries=100, clock=clock)
    deny.add_sid("old", clock.now - 1)
    assert len(deny) == 0
    for i in range(250):
        deny.add_jti(f"j{i}", clock.now + 1000 + i)
    assert len(deny) == 100
    # The entries that expire last are the ones kept; an evicted one is still refused, by the
    # floor that replaced it (issue 8: refuse rather than forget).
    assert deny.check(token_claims(jti="j249"), None) == "token revoked"
    assert deny.check(token_claims(jti="j0"), None) is not None
    assert deny.check(token_claims(jti="j0", iat=int(clock.now) + 1), None) is None


def test_apply_takes_feed_events_and_refuses_malformed_ones() -> None:
    clock = Clock()
    deny = Denylist(clock=clock)
    assert deny.apply({"type": "sid", "value": "s9", "expires_at": clock.now + 5})
    assert deny.apply(
        {"type": "user", "value": "u9", "not_before": 999_999.0, "expires_at": clock.now + 5}
    )
    for bad in (
        {"type": "nope", "value": "x", "expires_at": clock.now + 5},
        {"type": "sid", "value": 5, "expires_at": clock.now + 5},
        {"type": "sid", "value": "x"},
        {"type": "user", "value": "u", "expires_at": clock.now + 5},
        {},
    ):
        assert not deny.apply(bad)
    assert deny.check(token_claims(sid="s9"), None) == "session ended"


def test_the_cache_forgets_expired_tokens_and_evicts_the_least_recent() -> None:
    cache = VerifiedTokenCache(max_entries=2)
    now = time.time()
    cache.put("a", token_claims(exp=int(now) + 100), "k")
    cache.put("b", token_claims(exp=int(now) - 1), "k")
    assert cache.get("b", now) is None
    cache.put("c", token_claims(exp=int(now) + 100), "k")
    cache.get("a", now)
    cache.put("d", token_claims(exp=int(now) + 100), "k")
    assert cache.get("c", now) is None and cache.get("a", now) is not None


async def test_a_cached_token_is_still_refused_once_revoked(
    key_set: object, make_token: TokenFactory
) -> None:
    deny = Denylist()
    cache = VerifiedTokenCache()
    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, key_source=key_set, denylist=deny, cache=cache
    )  # type: ignore[arg-type]
    token = make_token(sid="s-cached")
    assert (await verifier.verify(token)).sid == "s-cached"
    assert len(cache) == 1
    deny.add_sid("s-cached", time.time() + 60)
    try:
        await verifier.verify(token)
    except TokenError as exc:
        assert exc.reason == "revoked"
    else:
        raise AssertionError("a revoked cached token was accepted")


async def test_a_cache_hit_skips_the_key_lookup(make_token: TokenFactory, key_set: object) -> None:
    class CountingKeys:
        calls = 0

        async def get_key(self, kid: str) -> object:
            CountingKeys.calls += 1
            return await key_set.get_key(kid)  # type: ignore[attr-defined]

    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, key_source=CountingKeys(), cache=VerifiedTokenCache()
    )
    token = make_token()
    for _ in range(5):
        await verifier.verify(token)
    assert CountingKeys.calls == 1
