"""Passkeys (WebAuthn Level 3) on SQLite and PostgreSQL, through FactorService and
SecondFactorLogin, with a software authenticator whose every byte the test chooses:
registration, a second factor, passwordless sign-in (user verification required), challenges
single use and bound to their flow, the counter rules of L3 §6.1.1, the backup-eligible flag,
and the negative cases: wrong origin, wrong RP ID, reused challenge, another account's
credential."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, update

from auth_server.factors.errors import (
    InvalidName,
    NotEnrolled,
    PasskeyRejected,
    ReauthenticationRequired,
)
from auth_server.factors.login import CounterRegression, PasskeySignIn
from auth_server.persistence.models import (
    AuditEvent,
    LoginSession,
    TotpCredential,
    WebAuthnChallenge,
    WebAuthnCredential,
)
from auth_server.persistence.sweeper import PENDING_TOTP_LIFETIME, sweep_once
from auth_server.sessions.authentication import HWK, PWD, authentication_for
from auth_server.sessions.service import SessionService
from auth_server.users.throttle import Throttled, account_key
from tests.integration.factors.authenticator import SoftAuthenticator
from tests.integration.factors.conftest import ACTOR, Harness, open_harness

BROWSER = "browser-session-1"  # what the ceremonies are bound to (the pages pass theirs)
FLOW = "login-flow-1"


async def register(
    h: Harness, user_id: str, device: SoftAuthenticator, name: str = "My laptop"
) -> Any:
    ceremony = await h.run(
        lambda db: h.state.factors.begin_passkey_registration(
            db, user_id, binding=BROWSER, auth_time=h.fresh
        )
    )
    response = device.register(ceremony.options)
    return await h.run(
        lambda db: h.state.factors.finish_passkey_registration(
            db,
            user_id,
            ceremony.id,
            response,
            name=name,
            binding=BROWSER,
            auth_time=h.fresh,
            actor=ACTOR,
        )
    )


async def sign_in(
    h: Harness,
    device: SoftAuthenticator,
    *,
    user_id: str | None = None,
    binding: str = FLOW,
    finish_binding: str | None = None,
    **assertion: Any,
) -> PasskeySignIn:
    ceremony = await h.run(
        lambda db: h.state.factor_login.begin_passkey(db, binding=binding, user_id=user_id)
    )
    response = device.assert_(ceremony.options, **assertion)
    return await h.run(
        lambda db: h.state.factor_login.finish_passkey(
            db, ceremony.id, response, binding=finish_binding or binding, actor=ACTOR
        )
    )


async def test_a_passkey_registers_and_serves_as_second_factor_and_passwordless(
    harness: Harness,
) -> None:
    h = harness
    user_id = await h.user()
    device = SoftAuthenticator()
    added = await register(h, user_id, device)
    assert added.passkey is not None and added.passkey.name == "My laptop"
    assert added.recovery_codes is not None and len(added.recovery_codes) == 10  # first factor
    assert await h.run(lambda db: h.state.factor_login.second_factor_due(db, user_id))

    # As a second factor: the account's passkeys are listed in the options.
    ceremony = await h.run(
        lambda db: h.state.factor_login.begin_passkey(db, binding=FLOW, user_id=user_id)
    )
    assert ceremony.options["rpId"] == "localhost"
    assert [c["id"] for c in ceremony.options["allowCredentials"]] == [
        added.passkey and (await passkey_row(h, user_id)).credential_id
    ]
    second = await sign_in(h, device, user_id=user_id)
    assert second.user_id == user_id and second.user_verified
    auth = authentication_for(h.clock.datetime(), (PWD, HWK), user_verified=second.user_verified)
    assert auth.amr == ("pwd", "hwk", "user", "mfa")

    # Passwordless: no account named; the authenticator's user handle finds it.
    ceremony = await h.run(lambda db: h.state.factor_login.begin_passkey(db, binding=FLOW))
    assert ceremony.options["allowCredentials"] == []
    assert ceremony.options["userVerification"] == "required"
    alone = await sign_in(h, device)
    assert alone.user_id == user_id
    auth = authentication_for(h.clock.datetime(), (HWK,), user_verified=alone.user_verified)
    assert auth.amr == ("hwk", "user", "mfa") and auth.acr == "urn:notes-auth:acr:mfa"


async def passkey_row(h: Harness, user_id: str) -> WebAuthnCredential:
    rows = await h.run(
        lambda db: db.scalars(
            select(WebAuthnCredential).where(WebAuthnCredential.user_id == user_id)
        )
    )
    return rows.one()


async def test_passwordless_sign_in_requires_user_verification(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    device = SoftAuthenticator()
    await register(h, user_id, device)
    with pytest.raises(PasskeyRejected, match="User verification"):
        await sign_in(h, device, uv=False)
    # As a second factor (the password passed), presence is enough: one more factor.
    second = await sign_in(h, device, user_id=user_id, uv=False)
    assert not second.user_verified
    auth = authentication_for(h.clock.datetime(), (PWD, HWK), user_verified=False)
    assert auth.amr == ("pwd", "hwk", "mfa")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"origin": "http://localhost:9999"}, "origin"),
        ({"origin": "https://evil.example"}, "origin"),
        ({"rp_id": "evil.example"}, "RP ID"),
        ({"cross_origin": True}, "cross-origin"),
    ],
)
async def test_an_assertion_from_another_origin_or_rp_id_is_refused(
    harness: Harness, change: dict[str, Any], reason: str
) -> None:
    h = harness
    user_id = await h.user()
    device = SoftAuthenticator()
    await register(h, user_id, device)
    with pytest.raises(PasskeyRejected, match=reason):
        await sign_in(h, device, user_id=user_id, **change)
    with pytest.raises(PasskeyRejected, match=reason):
        await sign_in(h, device, **change)


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"origin": "http://127.0.0.1:8000"}, "origin"), ({"rp_id": "127.0.0.1"}, "RP ID")],
)
async def test_a_registration_from_another_origin_or_rp_id_is_refused(
    harness: Harness, change: dict[str, Any], reason: str
) -> None:
    h = harness
    user_id = await h.user()
    ceremony = await h.run(
        lambda db: h.state.factors.begin_passkey_registration(
            db, user_id, binding=BROWSER, auth_time=h.fresh
        )
    )
    response = SoftAuthenticator().register(ceremony.options, **change)
    with pytest.raises(PasskeyRejected, match=reason):
        await h.run(
            lambda db: h.state.factors.finish_passkey_registration(
                db,
                user_id,
                ceremony.id,
                response,
                name="x",
                binding=BROWSER,
                auth_time=h.fresh,
                actor=ACTOR,
            )
        )
    assert not await h.run(lambda db: h.state.factor_login.second_factor_due(db, user_id))


async def test_a_challenge_is_used_once_and_only_by_its_flow(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    device = SoftAuthenticator()
    await register(h, user_id, device)
    ceremony = await h.run(
        lambda db: h.state.factor_login.begin_passkey(db, binding=FLOW, user_id=user_id)
    )
    response = device.assert_(ceremony.options)
    # Another flow (another browser) can't finish it, nor burn it.
    with pytest.raises(PasskeyRejected, match="expired or was used"):
        await h.run(
            lambda db: h.state.factor_login.finish_passkey(
                db, ceremony.id, response, binding="someone-else", actor=ACTOR
            )
        )
    await h.run(
        lambda db: h.state.factor_login.finish_passkey(
            db, ceremony.id, response, binding=FLOW, actor=ACTOR
        )
    )
    # The same response (and challenge) again: refused.
    with pytest.raises(PasskeyRejected, match="expired or was used"):
        await h.run(
            lambda db: h.state.factor_login.finish_passkey(
                db, ceremony.id, response, binding=FLOW, actor=ACTOR
            )
        )
    # A response to one challenge presented for another ceremony: the signature covers it.
    other = await h.run(
        lambda db: h.state.factor_login.begin_passkey(db, binding=FLOW, user_id=user_id)
    )
    with pytest.raises(PasskeyRejected, match="challenge"):
        await h.run(
            lambda db: h.state.factor_login.finish_passkey(
                db, other.id, response, binding=FLOW, actor=ACTOR
            )
        )


async def test_an_expired_challenge_is_refused(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    device = SoftAuthenticator()
    await register(h, user_id, device)
    ceremony = await h.run(lambda db: h.state.factor_login.begin_passkey(db, binding=FLOW))
    response = device.assert_(ceremony.options)
    h.clock.advance(h.state.settings.webauthn_challenge_ttl + 1)
    with pytest.raises(PasskeyRejected, match="expired"):
        await h.run(
            lambda db: h.state.factor_login.finish_passkey(
                db, ceremony.id, response, binding=FLOW, actor=ACTOR
            )
        )


async def test_one_ceremony_finished_twice_at_once_succeeds_exactly_once(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    device = SoftAuthenticator(counter=None)
    await register(h, user_id, device)

    async def finish(ceremony_id: str, response: dict[str, Any]) -> bool:
        try:
            await h.run(
                lambda db: h.state.factor_login.finish_passkey(
                    db, ceremony_id, response, binding=FLOW, actor=ACTOR
                )
            )
        except PasskeyRejected:
            return False
        return True

    for _ in range(3):
        ceremony = await h.run(lambda db: h.state.factor_login.begin_passkey(db, binding=FLOW))
        response = device.assert_(ceremony.options)
        results = await asyncio.gather(*(finish(ceremony.id, response) for _ in range(4)))
        assert sorted(results) == [False, False, False, True]


async def test_another_accounts_credential_is_refused(harness: Harness) -> None:
    h = harness
    alice, bob = await h.user(), await h.user()
    alice_device, bob_device = SoftAuthenticator(), SoftAuthenticator()
    await register(h, alice, alice_device)
    await register(h, bob, bob_device)
    # Bob's password passed, and Alice's passkey answers the second-factor challenge.
    with pytest.raises(PasskeyRejected, match="another account"):
        await sign_in(h, alice_device, user_id=bob)
    # A passwordless assertion whose user handle is another account's.
    assert bob_device.user_handle is not None
    with pytest.raises(PasskeyRejected, match="account doesn't match"):
        await sign_in(h, alice_device, user_handle=bob_device.user_handle)
    # A passwordless assertion without any user handle.
    with pytest.raises(PasskeyRejected, match="named no account"):
        await sign_in(h, alice_device, user_handle=None)
    # An unknown credential.
    with pytest.raises(PasskeyRejected, match="not registered"):
        await sign_in(h, SoftAuthenticator())
    # And Alice's own passkey still works afterwards.
    assert (await sign_in(h, alice_device)).user_id == alice


async def test_a_credential_registered_already_is_refused(harness: Harness) -> None:
    """L3 §7.1 step 26, also when the credential id is another account's."""
    h = harness
    alice, bob = await h.user(), await h.user()
    device = SoftAuthenticator()
    await register(h, alice, device)
    with pytest.raises(PasskeyRejected, match="registered already"):
        await register(h, bob, device)


async def test_counter_rules_of_webauthn_l3(harness: Harness) -> None:
    """L3 §6.1.1: both zero: accepted; higher: stored; not increasing: accepted, not lowered,
    flagged, audited and the owner told (keycloak#49920 refused or mishandled these)."""
    h = harness
    told: list[CounterRegression] = []

    async def hook(_db: Any, regression: CounterRegression) -> None:
        told.append(regression)

    h.state.factor_login.on_counter_regressed = hook
    user_id = await h.user()

    no_counter = SoftAuthenticator(counter=None)
    await register(h, user_id, no_counter, name="no counter")
    for _ in range(3):
        result = await sign_in(h, no_counter, user_id=user_id)
        assert not result.counter_regressed

    counting = SoftAuthenticator(counter=5)
    added = await register(h, user_id, counting, name="counting")
    assert added.passkey is not None
    result = await sign_in(h, counting, user_id=user_id)  # 6 > 5
    assert not result.counter_regressed

    async def stored_count() -> int:
        row = await h.run(
            lambda db: db.scalar(
                select(WebAuthnCredential.sign_count).where(
                    WebAuthnCredential.id == added.passkey.id  # type: ignore[union-attr]
                )
            )
        )
        return int(row)

    assert await stored_count() == 6
    for presented in (6, 3):  # equal, then lower: a possible clone
        result = await sign_in(h, counting, user_id=user_id, count=presented)
        assert result.counter_regressed
        assert await stored_count() == 6  # never lowered
    assert [(t.stored, t.presented) for t in told] == [(6, 6), (6, 3)]
    listed = await h.run(lambda db: h.state.factors.list_passkeys(db, user_id))
    flagged = {p.name: p.counter_regressed_at is not None for p in listed}
    assert flagged == {"no counter": False, "counting": True}
    events = await h.run(
        lambda db: db.scalars(
            select(AuditEvent.type).where(AuditEvent.type == "passkey_counter_regressed")
        )
    )
    assert len(events.all()) == 2
    result = await sign_in(h, counting, user_id=user_id, count=9)  # moves on
    assert not result.counter_regressed and await stored_count() == 9


async def test_the_backup_eligible_flag_never_changes(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    device = SoftAuthenticator(backup_eligible=True, backed_up=False)
    added = await register(h, user_id, device)
    assert added.passkey is not None and added.passkey.backup_eligible
    device.backed_up = True  # the backed-up state may change, and is stored
    await sign_in(h, device, user_id=user_id)
    assert (await passkey_row(h, user_id)).backed_up
    device.backup_eligible = device.backed_up = False
    with pytest.raises(PasskeyRejected, match="backup eligibility"):
        await sign_in(h, device, user_id=user_id)


async def test_list_rename_and_remove_passkeys(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    first, second = SoftAuthenticator(), SoftAuthenticator()
    added = await register(h, user_id, first, "Phone")
    h.clock.advance(1)  # listed oldest first
    await register(h, user_id, second, "Key")
    assert added.passkey is not None
    passkeys = await h.run(lambda db: h.state.factors.list_passkeys(db, user_id))
    assert [p.name for p in passkeys] == ["Phone", "Key"]
    renamed = await h.run(
        lambda db: h.state.factors.rename_passkey(
            db,
            user_id,
            added.passkey.id,
            "  Work   phone ",
            actor=ACTOR,  # type: ignore[union-attr]
        )
    )
    assert renamed.name == "Work phone"
    with pytest.raises(InvalidName):
        await h.run(
            lambda db: h.state.factors.rename_passkey(
                db,
                user_id,
                added.passkey.id,
                "\x07bell",
                actor=ACTOR,  # type: ignore[union-attr]
            )
        )
    other = await h.user()
    with pytest.raises(NotEnrolled):  # another account's passkey is no passkey of ours
        await h.run(
            lambda db: h.state.factors.remove_passkey(
                db,
                other,
                added.passkey.id,
                auth_time=h.fresh,
                actor=ACTOR,  # type: ignore[union-attr]
            )
        )
    stale = h.clock.now - h.state.settings.reauth_max_age - 1
    with pytest.raises(ReauthenticationRequired):
        await h.run(
            lambda db: h.state.factors.remove_passkey(
                db,
                user_id,
                added.passkey.id,
                auth_time=stale,
                actor=ACTOR,  # type: ignore[union-attr]
            )
        )
    removed = await h.run(
        lambda db: h.state.factors.remove_passkey(
            db,
            user_id,
            added.passkey.id,
            auth_time=h.fresh,
            actor=ACTOR,  # type: ignore[union-attr]
        )
    )
    assert not removed.last_factor
    with pytest.raises(PasskeyRejected):  # a removed passkey signs in no more
        await sign_in(h, first)
    last = (await h.run(lambda db: h.state.factors.list_passkeys(db, user_id)))[0]
    removed = await h.run(
        lambda db: h.state.factors.remove_passkey(
            db, user_id, last.id, auth_time=h.fresh, actor=ACTOR
        )
    )
    assert removed.last_factor and removed.recovery_codes_voided == 10


async def test_a_factor_change_ends_the_accounts_other_sessions(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    sessions: SessionService = h.state.sessions
    started = []
    for _ in range(3):
        started.append(
            await h.run(
                lambda db: sessions.start(
                    db, user_id=user_id, client_id="web", scope="", ip=None, user_agent=None
                )
            )
        )
    mine = started[0].session_id
    acting = type(ACTOR)(ip=ACTOR.ip, user_agent=ACTOR.user_agent, session_id=mine)
    ceremony = await h.run(
        lambda db: h.state.factors.begin_passkey_registration(
            db, user_id, binding=BROWSER, auth_time=h.fresh
        )
    )
    response = SoftAuthenticator().register(ceremony.options)
    await h.run(
        lambda db: h.state.factors.finish_passkey_registration(
            db,
            user_id,
            ceremony.id,
            response,
            name="k",
            binding=BROWSER,
            auth_time=h.fresh,
            actor=acting,
        )
    )
    live = await h.run(
        lambda db: db.scalars(
            select(LoginSession.id).where(
                LoginSession.user_id == user_id, LoginSession.ended_at.is_(None)
            )
        )
    )
    assert list(live.all()) == [mine]


async def test_the_sweeper_purges_expired_challenges_and_stale_enrolments(
    harness: Harness,
) -> None:
    h = harness
    user_id = await h.user()
    await h.run(lambda db: h.state.factor_login.begin_passkey(db, binding=FLOW))
    await h.run(lambda db: h.state.factors.begin_totp(db, user_id, auth_time=h.fresh))
    counts = await sweep_once(h.state.session_maker, h.state.settings)
    assert counts["webauthn_challenges"] == counts["totp_enrolments"] == 0

    async def backdate(db: Any) -> None:
        old = h.clock.datetime() - dt.timedelta(seconds=PENDING_TOTP_LIFETIME + 1)
        await db.execute(update(WebAuthnChallenge).values(expires_at=old))
        await db.execute(update(TotpCredential).values(created_at=old))

    await h.run(backdate)
    counts = await sweep_once(h.state.session_maker, h.state.settings)
    assert counts["webauthn_challenges"] == counts["totp_enrolments"] == 1


async def test_a_password_lockout_neither_blocks_nor_is_lifted_by_a_passkey(
    factor_settings: Any,
) -> None:
    """keycloak#41476: a passkey sign-in unlocked the account. Here an account whose password is
    throttled still signs in with a passkey alone (no guess can pass one), and its password
    stays throttled afterwards."""

    h = await open_harness(factor_settings.model_copy(update={"login_failure_limit": 2}))
    try:
        user_id = await h.user()
        device = SoftAuthenticator()
        await register(h, user_id, device)
        throttle = h.state.throttle
        account = account_key(user_id, "")

        async def password_attempt() -> bool:
            async with h.state.session_maker() as db:
                try:
                    async with throttle.attempt(account, user_id, ACTOR.ip, db=db):
                        pass  # a wrong password: the attempt stays counted
                except Throttled:
                    return False
                finally:
                    await db.commit()
            return True

        assert [await password_attempt() for _ in range(3)] == [True, True, False]
        assert (await sign_in(h, device)).user_id == user_id
        assert not await password_attempt()
    finally:
        await h.state.aclose()


async def test_a_registration_ceremony_is_used_once_by_its_own_account_and_session(
    harness: Harness,
) -> None:
    h = harness
    alice, bob = await h.user(), await h.user()
    ceremony = await h.run(
        lambda db: h.state.factors.begin_passkey_registration(
            db, alice, binding=BROWSER, auth_time=h.fresh
        )
    )
    response = SoftAuthenticator().register(ceremony.options)

    async def finish(user_id: str, binding: str) -> Any:
        return await h.run(
            lambda db: h.state.factors.finish_passkey_registration(
                db,
                user_id,
                ceremony.id,
                response,
                name="k",
                binding=binding,
                auth_time=h.fresh,
                actor=ACTOR,
            )
        )

    with pytest.raises(PasskeyRejected):  # another browser session
        await finish(alice, "another-browser")
    with pytest.raises(PasskeyRejected):  # another account (with the ceremony burnt)
        await finish(bob, BROWSER)
    with pytest.raises(PasskeyRejected):  # burnt: it was consumed by the attempt above
        await finish(alice, BROWSER)
    assert not await h.run(lambda db: h.state.factor_login.second_factor_due(db, bob))
    assert not await h.run(lambda db: h.state.factor_login.second_factor_due(db, alice))
