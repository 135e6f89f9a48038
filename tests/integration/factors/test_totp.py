"""TOTP (RFC 6238) on SQLite and PostgreSQL: enrolment confirmed by a first code, the seed
encrypted at rest, every code usable once (the setup code included), ±1 step at most, codes
from another implementation (Debian's oathtool) accepted, and two requests with one code at
once: exactly one succeeds."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest
from sqlalchemy import select, update

from auth_server.factors import totp
from auth_server.factors.errors import (
    NotEnrolled,
    ReauthenticationRequired,
    WrongCode,
)
from auth_server.factors.lock import OTP
from auth_server.keys.crypto import SecretDecryptionError
from auth_server.persistence.models import AuditEvent, TotpCredential
from tests.integration.factors.conftest import ACTOR, Harness


async def enrol(h: Harness, user_id: str) -> str:
    """Enrol and confirm TOTP with the current step's code; returns the seed."""
    enrolment = await h.run(lambda db: h.state.factors.begin_totp(db, user_id, auth_time=h.fresh))
    code = totp.code_at(enrolment.secret, totp.current_step(h.clock.now))
    await h.run(
        lambda db: h.state.factors.confirm_totp(
            db, user_id, enrolment.id, code, auth_time=h.fresh, actor=ACTOR
        )
    )
    return enrolment.secret


async def sign_in(h: Harness, user_id: str, code: str) -> str:
    accepted = await h.run(lambda db: h.state.factor_login.verify_code(db, user_id, code, ACTOR))
    return accepted.kind


async def test_enrolment_gives_secret_uri_and_qr_code_and_counts_once_confirmed(
    harness: Harness,
) -> None:
    h = harness
    user_id = await h.user("alice")
    enrolment = await h.run(lambda db: h.state.factors.begin_totp(db, user_id, auth_time=h.fresh))
    assert len(enrolment.secret) == 32  # 160 bits of base32
    assert enrolment.uri.startswith("otpauth://totp/notes-auth:alice?secret=" + enrolment.secret)
    assert enrolment.qr_svg.startswith("<svg") and "<path" in enrolment.qr_svg
    # Not confirmed yet: no second factor, and a code doesn't sign in.
    assert not await h.run(lambda db: h.state.factor_login.second_factor_due(db, user_id))
    code = totp.code_at(enrolment.secret, totp.current_step(h.clock.now))
    with pytest.raises(WrongCode):
        await sign_in(h, user_id, code)
    added = await h.run(
        lambda db: h.state.factors.confirm_totp(
            db, user_id, enrolment.id, code, auth_time=h.fresh, actor=ACTOR
        )
    )
    assert added.recovery_codes is not None and len(added.recovery_codes) == 10
    assert await h.run(lambda db: h.state.factor_login.second_factor_due(db, user_id))


async def test_a_wrong_first_code_leaves_the_enrolment_pending(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    enrolment = await h.run(lambda db: h.state.factors.begin_totp(db, user_id, auth_time=h.fresh))
    wrong = totp.code_at(enrolment.secret, totp.current_step(h.clock.now) + 5)
    with pytest.raises(WrongCode):
        await h.run(
            lambda db: h.state.factors.confirm_totp(
                db, user_id, enrolment.id, wrong, auth_time=h.fresh, actor=ACTOR
            )
        )
    assert not await h.run(lambda db: h.state.factor_login.second_factor_due(db, user_id))
    with pytest.raises(NotEnrolled):  # another account can't confirm it
        other = await h.user()
        await h.run(
            lambda db: h.state.factors.confirm_totp(
                db, other, enrolment.id, wrong, auth_time=h.fresh, actor=ACTOR
            )
        )


async def test_the_setup_code_and_every_used_code_are_refused_again(harness: Harness) -> None:
    """Hanko PR #2723 (the setup code replayed as the first login), keycloak#13607 and Infisical
    #6049 (a code replayable within its window)."""
    h = harness
    user_id = await h.user()
    seed = await enrol(h, user_id)
    step = totp.current_step(h.clock.now)
    setup_code = totp.code_at(seed, step)
    with pytest.raises(WrongCode):
        await sign_in(h, user_id, setup_code)
    # The next step's code (the clock drifted a step ahead) is accepted once...
    assert await sign_in(h, user_id, totp.code_at(seed, step + 1)) == OTP
    with pytest.raises(WrongCode):
        await sign_in(h, user_id, totp.code_at(seed, step + 1))
    # ...and no earlier code is accepted after it, even one never used and still in the window.
    h.clock.advance(totp.PERIOD)  # now step + 1: step is within ±1, and older than the last used
    with pytest.raises(WrongCode):
        await sign_in(h, user_id, totp.code_at(seed, step))
    assert await sign_in(h, user_id, totp.code_at(seed, step + 2)) == OTP


async def test_codes_at_most_one_step_away_are_accepted(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    seed = await enrol(h, user_id)
    h.clock.advance(10 * totp.PERIOD)
    step = totp.current_step(h.clock.now)
    with pytest.raises(WrongCode):
        await sign_in(h, user_id, totp.code_at(seed, step - 2))
    with pytest.raises(WrongCode):
        await sign_in(h, user_id, totp.code_at(seed, step + 2))
    assert await sign_in(h, user_id, totp.code_at(seed, step - 1)) == OTP
    h.clock.advance(3 * totp.PERIOD)
    assert await sign_in(h, user_id, totp.code_at(seed, step + 3)) == OTP


@pytest.mark.skipif(shutil.which("oathtool") is None, reason="oathtool is not installed")
async def test_codes_made_by_oathtool_are_accepted(harness: Harness) -> None:
    """An independent implementation (Debian's oathtool, RFC 6238 in C) computes the codes from
    the secret we showed, as an authenticator app would."""
    h = harness
    user_id = await h.user()
    enrolment = await h.run(lambda db: h.state.factors.begin_totp(db, user_id, auth_time=h.fresh))

    def oathtool(at: float) -> str:
        out = subprocess.run(
            ["oathtool", "--totp", "-b", f"--now=@{int(at)}", enrolment.secret],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    await h.run(
        lambda db: h.state.factors.confirm_totp(
            db, user_id, enrolment.id, oathtool(h.clock.now), auth_time=h.fresh, actor=ACTOR
        )
    )
    h.clock.advance(totp.PERIOD)
    assert await sign_in(h, user_id, oathtool(h.clock.now)) == OTP
    with pytest.raises(WrongCode):  # the same code again
        await sign_in(h, user_id, oathtool(h.clock.now))
    h.clock.advance(totp.PERIOD)
    assert await sign_in(h, user_id, oathtool(h.clock.now + totp.PERIOD)) == OTP  # a step ahead


async def test_the_seed_is_encrypted_at_rest_and_bound_to_its_row(harness: Harness) -> None:
    h = harness
    alice, bob = await h.user(), await h.user()
    seed = await enrol(h, alice)
    await enrol(h, bob)

    async def rows(db):  # type: ignore[no-untyped-def]
        return {r.user_id: r for r in (await db.scalars(select(TotpCredential))).all()}

    stored = await h.run(rows)
    blob = stored[alice].secret_encrypted
    assert seed.encode() not in blob and len(blob) == 12 + len(seed) + 16  # nonce, AES-GCM tag
    # Alice's ciphertext copied onto Bob's row doesn't decrypt (associated data: id and user).
    await h.run(
        lambda db: db.execute(
            update(TotpCredential)
            .where(TotpCredential.user_id == bob)
            .values(secret_encrypted=blob)
        )
    )
    with pytest.raises(SecretDecryptionError):
        await h.run(lambda db: h.state.factor_login.verify_code(db, bob, "123456", ACTOR))


async def test_the_same_code_twice_at_once_succeeds_exactly_once(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    seed = await enrol(h, user_id)
    code = totp.code_at(seed, totp.current_step(h.clock.now) + 1)

    async def attempt() -> bool:
        try:
            await sign_in(h, user_id, code)
        except WrongCode:
            return False
        return True

    for _ in range(3):  # several rounds, each with a fresh code
        results = await asyncio.gather(*(attempt() for _ in range(4)))
        assert sorted(results) == [False, False, False, True]
        h.clock.advance(totp.PERIOD)
        code = totp.code_at(seed, totp.current_step(h.clock.now) + 1)


async def test_factor_changes_need_a_fresh_sign_in(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    await enrol(h, user_id)
    stale = h.clock.now - h.state.settings.reauth_max_age - 1
    with pytest.raises(ReauthenticationRequired):
        await h.run(lambda db: h.state.factors.begin_totp(db, user_id, auth_time=stale))
    with pytest.raises(ReauthenticationRequired):
        await h.run(
            lambda db: h.state.factors.remove_totp(db, user_id, auth_time=stale, actor=ACTOR)
        )
    with pytest.raises(ReauthenticationRequired):
        await h.run(
            lambda db: h.state.factors.remove_totp(db, user_id, auth_time=None, actor=ACTOR)
        )
    assert await h.run(lambda db: h.state.factor_login.second_factor_due(db, user_id))
    removed = await h.run(
        lambda db: h.state.factors.remove_totp(db, user_id, auth_time=h.fresh, actor=ACTOR)
    )
    assert removed.last_factor and removed.recovery_codes_voided == 10
    assert not await h.run(lambda db: h.state.factor_login.second_factor_due(db, user_id))

    async def audit_types(db):  # type: ignore[no-untyped-def]
        rows = await db.scalars(select(AuditEvent.type).where(AuditEvent.user_id == user_id))
        return list(rows.all())

    types = await h.run(audit_types)
    assert "factor_added" in types and "factor_removed" in types


async def test_one_enrolment_confirmed_twice_at_once_counts_once(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    enrolment = await h.run(lambda db: h.state.factors.begin_totp(db, user_id, auth_time=h.fresh))
    code = totp.code_at(enrolment.secret, totp.current_step(h.clock.now))

    async def confirm() -> str:
        try:
            added = await h.run(
                lambda db: h.state.factors.confirm_totp(
                    db, user_id, enrolment.id, code, auth_time=h.fresh, actor=ACTOR
                )
            )
        except NotEnrolled:
            return "refused"
        return "codes" if added.recovery_codes else "confirmed"

    assert sorted(await asyncio.gather(*(confirm() for _ in range(4)))) == [
        "codes",
        "refused",
        "refused",
        "refused",
    ]
    with pytest.raises(WrongCode):  # and the setup code still doesn't sign in
        await sign_in(h, user_id, code)
