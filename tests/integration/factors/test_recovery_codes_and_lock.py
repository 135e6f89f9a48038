"""Recovery codes, the factor throttle and the 100-failure lock, on SQLite and PostgreSQL:
- ten codes with the first second factor, each usable once (one of two racing requests wins),
  regenerating voids the old ones, the count of those left;
- AUTH_FACTOR_FAILURE_LIMIT per account and per address, counted before the check (parallel
  wrong codes check at most the limit), kept apart from the password lockout;
- after 100 consecutive failures the factor locks, right code or not, until a reset."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from auth_server.factors import recovery_codes, totp
from auth_server.factors.actor import Actor
from auth_server.factors.errors import FactorLocked, FactorThrottled, NotEnrolled, WrongCode
from auth_server.factors.lock import LOCK_THRESHOLD, OTP, RECOVERY
from auth_server.persistence.models import AuditEvent, RecoveryCode
from auth_server.settings import AuthSettings
from auth_server.users.throttle import account_key
from tests.databases import TEST_KEK
from tests.integration.factors.conftest import ACTOR, Harness, open_harness
from tests.integration.factors.test_totp import enrol


async def enrol_with_codes(h: Harness, user_id: str) -> tuple[str, list[str]]:
    enrolment = await h.run(lambda db: h.state.factors.begin_totp(db, user_id, auth_time=h.fresh))
    code = totp.code_at(enrolment.secret, totp.current_step(h.clock.now))
    added = await h.run(
        lambda db: h.state.factors.confirm_totp(
            db, user_id, enrolment.id, code, auth_time=h.fresh, actor=ACTOR
        )
    )
    assert added.recovery_codes is not None
    return enrolment.secret, added.recovery_codes


async def verify(h: Harness, user_id: str, code: str, actor: Actor = ACTOR) -> Any:
    return await h.run(lambda db: h.state.factor_login.verify_code(db, user_id, code, actor))


async def test_ten_codes_stored_as_hashes_each_usable_once(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    _, codes = await enrol_with_codes(h, user_id)
    assert len(codes) == recovery_codes.COUNT == 10 and len(set(codes)) == 10
    stored = await h.run(
        lambda db: db.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user_id))
    )
    hashes = list(stored.all())
    assert len(hashes) == 10
    assert not any(code.replace("-", "") in h_ for code in codes for h_ in hashes)
    # Typed in lower case with spaces instead of hyphens: the same code.
    accepted = await verify(h, user_id, codes[0].lower().replace("-", " "))
    assert accepted.kind == RECOVERY and accepted.recovery_codes_left == 9
    with pytest.raises(WrongCode):
        await verify(h, user_id, codes[0])
    overview = await h.run(lambda db: h.state.factors.overview(db, user_id))
    assert overview.recovery_codes_left == 9 and not overview.recovery_codes_low
    for code in codes[1:7]:
        await verify(h, user_id, code)
    overview = await h.run(lambda db: h.state.factors.overview(db, user_id))
    assert overview.recovery_codes_left == 3 and overview.recovery_codes_low


async def test_another_accounts_code_is_refused(harness: Harness) -> None:
    h = harness
    alice, bob = await h.user(), await h.user()
    _, alice_codes = await enrol_with_codes(h, alice)
    await enrol_with_codes(h, bob)
    with pytest.raises(WrongCode):
        await verify(h, bob, alice_codes[0])
    assert (await verify(h, alice, alice_codes[0])).kind == RECOVERY


async def test_regenerating_voids_the_old_codes(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    _, old = await enrol_with_codes(h, user_id)
    new = await h.run(
        lambda db: h.state.factors.generate_recovery_codes(
            db, user_id, auth_time=h.fresh, actor=ACTOR
        )
    )
    assert len(new) == 10 and not set(new) & set(old)
    with pytest.raises(WrongCode):
        await verify(h, user_id, old[1])
    assert (await verify(h, user_id, new[1])).recovery_codes_left == 9


async def test_codes_only_beside_a_second_factor(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    with pytest.raises(NotEnrolled):
        await h.run(
            lambda db: h.state.factors.generate_recovery_codes(
                db, user_id, auth_time=h.fresh, actor=ACTOR
            )
        )


async def test_one_code_twice_at_once_succeeds_exactly_once(harness: Harness) -> None:
    h = harness
    user_id = await h.user()
    _, codes = await enrol_with_codes(h, user_id)

    async def attempt(code: str) -> bool:
        try:
            await verify(h, user_id, code)
        except WrongCode:
            return False
        return True

    for code in codes[:3]:
        results = await asyncio.gather(*(attempt(code) for _ in range(4)))
        assert sorted(results) == [False, False, False, True]


# -- the throttle ----------------------------------------------------------------------------


async def test_wrong_codes_are_throttled_per_account_before_they_are_checked(
    factor_settings: AuthSettings,
) -> None:
    """12 wrong codes at once against a limit of 3: exactly 3 are checked, 9 refused unchecked."""
    h = await open_harness(factor_settings.model_copy(update={"factor_failure_limit": 3}))
    try:
        user_id = await h.user()
        seed = await enrol(h, user_id)
        checks = count_totp_checks(h)
        wrong = totp.code_at(seed, totp.current_step(h.clock.now) + 7)

        async def attempt() -> str:
            try:
                await verify(h, user_id, wrong)
            except WrongCode:
                return "wrong"
            except FactorThrottled as throttled:
                assert throttled.retry_after > 0
                return "throttled"
            return "accepted"

        results = await asyncio.gather(*(attempt() for _ in range(12)))
        assert sorted(results) == ["throttled"] * 9 + ["wrong"] * 3
        assert checks[0] == 3
        # The right code is refused too while the account is over its limit: no more checks.
        with pytest.raises(FactorThrottled):
            await verify(h, user_id, totp.code_at(seed, totp.current_step(h.clock.now) + 1))
        assert checks[0] == 3
    finally:
        await h.state.aclose()


async def test_wrong_codes_are_throttled_per_address_across_accounts(
    factor_settings: AuthSettings,
) -> None:
    h = await open_harness(
        factor_settings.model_copy(update={"factor_failure_limit": 100, "factor_ip_limit": 4})
    )
    try:
        users = [await h.user() for _ in range(3)]
        for user_id in users:
            await enrol(h, user_id)
        outcomes = []
        for user_id in users:
            for _ in range(2):
                try:
                    await verify(h, user_id, "000000")
                    outcomes.append("accepted")
                except WrongCode:
                    outcomes.append("wrong")
                except FactorThrottled:
                    outcomes.append("throttled")
        assert outcomes == ["wrong"] * 4 + ["throttled"] * 2
        # Another address is not held back by this one.
        elsewhere = Actor(ip="198.51.100.7", user_agent="other")
        with pytest.raises(WrongCode):
            await verify(h, users[2], "000000", elsewhere)
    finally:
        await h.state.aclose()


async def test_a_right_code_clears_the_accounts_wrong_codes(
    factor_settings: AuthSettings,
) -> None:
    h = await open_harness(factor_settings.model_copy(update={"factor_failure_limit": 3}))
    try:
        user_id = await h.user()
        seed = await enrol(h, user_id)
        for _ in range(2):
            with pytest.raises(WrongCode):
                await verify(h, user_id, "000000")
        await verify(h, user_id, totp.code_at(seed, totp.current_step(h.clock.now) + 1))
        for _ in range(3):  # three more wrong ones fit again
            with pytest.raises(WrongCode):
                await verify(h, user_id, "000000")
        with pytest.raises(FactorThrottled):
            await verify(h, user_id, "000000")
    finally:
        await h.state.aclose()


async def test_wrong_codes_never_count_toward_the_password_lockout(
    factor_settings: AuthSettings,
) -> None:
    """keycloak#41476: failed second factors counted toward the password lockout. Here 20 wrong
    codes leave every password counter as it was: the password still signs in at the first try
    with a login limit of 1."""
    settings = factor_settings.model_copy(
        update={
            "factor_failure_limit": 1000,
            "login_failure_limit": 1,
            "login_ip_limit": 1,
            "login_account_limit": 1,
        }
    )
    h = await open_harness(settings)
    try:
        user_id = await h.user()
        await enrol(h, user_id)
        for _ in range(20):
            with pytest.raises(WrongCode):
                await verify(h, user_id, "000000")
        throttle = h.state.throttle
        async with h.state.session_maker() as db:
            async with throttle.attempt(account_key(user_id, ""), user_id, ACTOR.ip, db=db):
                pass  # the limit of 1 still has room: nothing was counted before
            await db.commit()
    finally:
        await h.state.aclose()


# -- the lock --------------------------------------------------------------------------------


async def test_a_hundred_failures_in_a_row_lock_the_factor_until_a_reset(
    factor_settings: AuthSettings,
) -> None:
    """NIST SP 800-63B §5.2.2. The 101st attempt is refused with the right code; the recovery
    codes (another factor) still work; the owner's re-enrolment and an operator's reset unlock."""
    h = await open_harness(
        factor_settings.model_copy(
            update={"factor_failure_limit": 10_000, "factor_ip_limit": 10_000}
        )
    )
    try:
        user_id = await h.user()
        seed, codes = await enrol_with_codes(h, user_id)
        checks = count_totp_checks(h)
        for _ in range(LOCK_THRESHOLD - 1):
            with pytest.raises(WrongCode):
                await verify(h, user_id, "000000")
        # A success before the threshold sets the count back to zero...
        step = totp.current_step(h.clock.now)
        await verify(h, user_id, totp.code_at(seed, step + 1))
        for _ in range(LOCK_THRESHOLD):
            with pytest.raises(WrongCode):
                await verify(h, user_id, "000000")
        assert checks[0] == 2 * LOCK_THRESHOLD
        h.clock.advance(totp.PERIOD * 3)
        right = totp.code_at(seed, totp.current_step(h.clock.now))
        with pytest.raises(FactorLocked):
            await verify(h, user_id, right)
        assert checks[0] == 2 * LOCK_THRESHOLD  # refused without a check
        overview = await h.run(lambda db: h.state.factors.overview(db, user_id))
        assert overview.locked == {OTP}
        assert (await verify(h, user_id, codes[0])).kind == RECOVERY  # another factor: unlocked

        await h.run(lambda db: h.state.factors.reset_lock(db, user_id, (OTP,), actor=ACTOR))
        assert (await verify(h, user_id, right)).kind == OTP

        types = await h.run(
            lambda db: db.scalars(select(AuditEvent.type).where(AuditEvent.user_id == user_id))
        )
        assert {"factor_locked", "factor_lock_reset"} <= set(types.all())
    finally:
        await h.state.aclose()


async def test_enrolling_again_is_the_owners_reset(factor_settings: AuthSettings) -> None:
    h = await open_harness(
        factor_settings.model_copy(
            update={"factor_failure_limit": 10_000, "factor_ip_limit": 10_000}
        )
    )
    try:
        user_id = await h.user()
        await enrol(h, user_id)
        for _ in range(LOCK_THRESHOLD):
            with pytest.raises(WrongCode):
                await verify(h, user_id, "000000")
        with pytest.raises(FactorLocked):
            await verify(h, user_id, "000000")
        h.clock.advance(totp.PERIOD)
        seed = await enrol(h, user_id)  # a new authenticator app, after signing in another way
        h.clock.advance(totp.PERIOD)
        assert (
            await verify(h, user_id, totp.code_at(seed, totp.current_step(h.clock.now)))
        ).kind == OTP
    finally:
        await h.state.aclose()


def count_totp_checks(h: Harness) -> list[int]:
    """Counts the codes actually compared with a seed (after the throttle and the lock)."""
    login = h.state.factor_login
    checks = [0]
    original = login._check_totp

    async def counting(*args: Any) -> bool:
        checks[0] += 1
        return await original(*args)

    login._check_totp = counting  # type: ignore[method-assign]
    return checks


async def test_an_operator_resets_a_locked_factor_from_the_command_line(
    factor_settings: AuthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from auth_server.cli import app

    h = await open_harness(
        factor_settings.model_copy(
            update={"factor_failure_limit": 10_000, "factor_ip_limit": 10_000}
        )
    )
    try:
        user_id = await h.user("locked-factor")
        seed = await enrol(h, user_id)
        for _ in range(LOCK_THRESHOLD):
            with pytest.raises(WrongCode):
                await verify(h, user_id, "000000")
        right = totp.code_at(seed, totp.current_step(h.clock.now) + 1)
        with pytest.raises(FactorLocked):
            await verify(h, user_id, right)
        for name, value in {
            "AUTH_DATABASE_URL": factor_settings.database_url,
            "AUTH_KEY_ENCRYPTION_KEY": TEST_KEK,
            "AUTH_ENVIRONMENT": "test",
            "AUTH_VAR_DIR": str(factor_settings.var_dir),
        }.items():
            monkeypatch.setenv(name, value)
        runner = CliRunner()
        result = await asyncio.to_thread(
            runner.invoke, app, ["users", "reset-factors", "locked-factor"]
        )
        assert result.exit_code == 0, result.output
        assert "second factors unlocked for locked-factor" in result.output
        assert (await verify(h, user_id, right)).kind == OTP
        missing = await asyncio.to_thread(runner.invoke, app, ["users", "reset-factors", "nobody"])
        assert missing.exit_code == 1
    finally:
        await h.state.aclose()


async def test_parallel_wrong_codes_check_at_most_the_limit_on_redis(
    factor_settings: AuthSettings, redis_url: str, redis_prefix: str
) -> None:
    settings = factor_settings.model_copy(
        update={"factor_failure_limit": 3, "redis_url": redis_url, "redis_prefix": redis_prefix}
    )
    h = await open_harness(settings)
    try:
        user_id = await h.user()
        await enrol(h, user_id)
        checks = count_totp_checks(h)

        async def attempt() -> str:
            try:
                await verify(h, user_id, "000000")
            except WrongCode:
                return "wrong"
            except FactorThrottled:
                return "throttled"
            return "accepted"

        results = await asyncio.gather(*(attempt() for _ in range(12)))
        assert sorted(results) == ["throttled"] * 9 + ["wrong"] * 3
        assert checks[0] == 3
    finally:
        await h.state.aclose()
