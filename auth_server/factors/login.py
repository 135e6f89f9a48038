"""Signing in with a second factor, or with a passkey alone: what the hosted sign-in and the
password grant call once they know who is signing in (or, for a passwordless sign-in, before).

- `second_factor_due`: whether an account must pass a second factor after its password;
- `verify_code`: a TOTP or recovery code, throttled, locked after 100 failures in a row, each
  code usable once;
- `begin_passkey` / `finish_passkey`: a WebAuthn assertion, as a second factor (the account is
  known) or passwordless (discoverable credentials, user verification required).

None of this touches the password throttle: a failed code or passkey never counts toward the
password lockout, and no factor clears it (the caller forgives the password's attempt only once
the whole sign-in passed). A password lockout doesn't stop a passwordless sign-in: no guess can
pass one. Turning the result into `amr`/`acr` is `sessions.authentication.authentication_for`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server import audit
from auth_server.factors import recovery_codes, totp
from auth_server.factors.actor import Actor
from auth_server.factors.errors import (
    FactorLocked,
    FactorThrottled,
    PasskeyRejected,
    WrongCode,
)
from auth_server.factors.lock import LOCK_THRESHOLD, OTP, RECOVERY, FactorLocks
from auth_server.factors.repository import (
    Challenges,
    Passkeys,
    RecoveryCodes,
    TotpCredentials,
)
from auth_server.factors.throttle import FactorThrottle
from auth_server.factors.webauthn import (
    PREFERRED,
    REQUIRED,
    CounterOutcome,
    RelyingParty,
    counter_outcome,
)
from auth_server.persistence.models import TotpCredential, WebAuthnCredential
from auth_server.settings import AuthSettings
from shared.service.db import utcnow

log = logging.getLogger("auth_server.factors")

AUTHENTICATE = "authenticate"
MAX_CODE_CHARS = 64  # longer is no code of ours (and is never hashed)


@dataclass(frozen=True, slots=True)
class PasskeyCeremony:
    """A WebAuthn ceremony begun: the page passes `options` to the browser
    (`PublicKeyCredential.parse*OptionsFromJSON`) and sends `id` back with the response."""

    id: str
    options: dict[str, Any]
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class CodeAccepted:
    kind: str  # OTP (a TOTP code) or RECOVERY
    recovery_codes_left: int | None  # after a recovery code: how many remain (warn at <= 3)


@dataclass(frozen=True, slots=True)
class PasskeySignIn:
    user_id: str
    passkey_id: str
    user_verified: bool
    counter_regressed: bool


@dataclass(frozen=True, slots=True)
class CounterRegression:
    """A passkey whose signature counter did not increase (WebAuthn L3 §6.1.1)."""

    user_id: str
    passkey_id: str
    passkey_name: str
    stored: int
    presented: int


# Told when a passkey's counter did not increase, inside the sign-in's unit of work: the hook
# for the security notice to the account's owner (mail arrives with issue 23).
CounterRegressedHook = Callable[[AsyncSession, CounterRegression], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AvailableFactors:
    """What the second-factor page can offer an account."""

    totp: bool
    passkeys: int
    recovery_codes: int
    locked: frozenset[str]

    @property
    def second_factor(self) -> bool:
        return self.totp or self.passkeys > 0


async def has_second_factor(db: AsyncSession, user_id: str) -> bool:
    """A confirmed TOTP authenticator or a passkey. (Recovery codes are a way back in, not a
    factor of their own: they exist only beside one.)"""
    totp_confirmed = exists().where(
        TotpCredential.user_id == user_id, TotpCredential.confirmed_at.is_not(None)
    )
    passkey = exists().where(WebAuthnCredential.user_id == user_id)
    return bool(await db.scalar(select(totp_confirmed | passkey)))


class SecondFactorLogin:
    def __init__(
        self,
        settings: AuthSettings,
        *,
        totp_credentials: TotpCredentials,
        recovery: RecoveryCodes,
        recovery_hasher: recovery_codes.RecoveryCodeHasher,
        passkeys: Passkeys,
        challenges: Challenges,
        locks: FactorLocks,
        throttle: FactorThrottle,
        relying_party: RelyingParty,
        clock: Callable[[], dt.datetime] = utcnow,
        on_counter_regressed: CounterRegressedHook | None = None,
    ) -> None:
        self._settings = settings
        self._totp = totp_credentials
        self._recovery = recovery
        self._hasher = recovery_hasher
        self._passkeys = passkeys
        self._challenges = challenges
        self._locks = locks
        self._throttle = throttle
        self._rp = relying_party
        self._clock = clock
        self.on_counter_regressed = on_counter_regressed

    async def second_factor_due(self, db: AsyncSession, user_id: str) -> bool:
        """After a right password: must this account pass a second factor?"""
        return await has_second_factor(db, user_id)

    async def available(self, db: AsyncSession, user_id: str) -> AvailableFactors:
        return AvailableFactors(
            totp=await self._totp.confirmed(db, user_id) is not None,
            passkeys=await self._passkeys.count(db, user_id),
            recovery_codes=await self._recovery.remaining(db, user_id),
            locked=await self._locks.locked(db, user_id),
        )

    # -- codes -----------------------------------------------------------------------------

    async def verify_code(
        self, db: AsyncSession, user_id: str, code: str, actor: Actor
    ) -> CodeAccepted:
        """A TOTP code (six digits) or a recovery code, for this account. Raises WrongCode (wrong,
        used, or from a step used already), FactorThrottled, FactorLocked, or LimiterUnavailable
        (the throttle's counts can't be reached: fail closed). Failures are counted and audited
        in the caller's unit of work, which must commit them."""
        kind = OTP if totp.normalize_code(code[:MAX_CODE_CHARS]) is not None else RECOVERY
        try:
            # Counted before the code is checked: parallel guesses can't outrun the limit.
            attempt = await self._throttle.attempt(user_id, actor.ip, db=db)
        except FactorThrottled as throttled:
            if throttled.report:
                self._audit(
                    db,
                    audit.FACTOR_THROTTLED,
                    user_id,
                    actor,
                    kind=kind,
                    refused_in_window=throttled.refused_so_far,
                )
            raise
        now = self._clock()
        consecutive = await self._locks.count(db, user_id, kind, now)
        if consecutive > LOCK_THRESHOLD:
            await self._throttle.refund(attempt, db=db)  # nothing was checked
            raise FactorLocked(kind)
        accepted = await (
            self._check_totp(db, user_id, code, now)
            if kind == OTP
            else self._check_recovery(db, user_id, code, now)
        )
        if not accepted:
            self._audit(db, audit.FACTOR_FAILED, user_id, actor, kind=kind)
            if consecutive == LOCK_THRESHOLD:
                await self._locks.lock(db, user_id, kind, now)
                self._audit(db, audit.FACTOR_LOCKED, user_id, actor, kind=kind)
            raise WrongCode("the code is wrong or was used already")
        await self._locks.succeeded(db, user_id, kind, now)
        await self._throttle.succeeded(attempt, db=db)
        left = None
        if kind == RECOVERY:
            left = await self._recovery.remaining(db, user_id)
            self._audit(db, audit.RECOVERY_CODE_USED, user_id, actor, remaining=left)
        return CodeAccepted(kind, left)

    async def _check_totp(
        self, db: AsyncSession, user_id: str, code: str, now: dt.datetime
    ) -> bool:
        stored = await self._totp.confirmed(db, user_id)
        if stored is None:
            return False
        step = totp.matching_step(stored.seed, code, now.timestamp())
        # RFC 6238 §5.2: each step's code is accepted once, and no step at or before the last
        # one accepted (the setup code's included): one compare-and-swap decides.
        return step is not None and await self._totp.use_step(db, stored.id, step, now)

    async def _check_recovery(
        self, db: AsyncSession, user_id: str, code: str, now: dt.datetime
    ) -> bool:
        code_hash = self._hasher.hash(user_id, code[:MAX_CODE_CHARS])
        return code_hash is not None and await self._recovery.use(db, user_id, code_hash, now)

    # -- passkeys --------------------------------------------------------------------------

    async def begin_passkey(
        self, db: AsyncSession, *, binding: str, user_id: str | None = None
    ) -> PasskeyCeremony:
        """An assertion's options. With `user_id` (the password passed): a second factor, with
        the account's passkeys listed. Without: a passwordless sign-in, where the authenticator
        offers its discoverable credentials and must verify the user. `binding` is what the
        ceremony is bound to (the login flow): only the same can finish it."""
        allow: list[tuple[str, list[str]]] = []
        if user_id is not None:
            allow = [
                (row.credential_id, row.transports.split())
                for row in await self._passkeys.of_user(db, user_id)
            ]
        verification = PREFERRED if user_id is not None else REQUIRED
        now = self._clock()
        ceremony_id, challenge = await self._challenges.create(
            db,
            purpose=AUTHENTICATE,
            binding=binding,
            user_id=user_id,
            user_handle=None,
            user_verification=verification,
            now=now,
            ttl=self._settings.webauthn_challenge_ttl,
        )
        options = self._rp.authentication_options(
            challenge=challenge, allow=allow, user_verification=verification
        )
        expires = now + dt.timedelta(seconds=self._settings.webauthn_challenge_ttl)
        return PasskeyCeremony(ceremony_id, options, expires)

    async def finish_passkey(
        self,
        db: AsyncSession,
        ceremony_id: str,
        response: str | Mapping[str, Any],
        *,
        binding: str,
        actor: Actor,
    ) -> PasskeySignIn:
        """Verify an assertion (AuthenticationResponseJSON) for a ceremony begun with
        `begin_passkey` and the same `binding`. The challenge is spent whatever the outcome.
        Raises PasskeyRejected: the challenge is unknown, used, expired or someone else's; the
        credential is unknown or another account's (when the account is known); the user handle
        is not the credential's; the origin, RP ID or signature is wrong; user verification is
        missing where required; the backup-eligible flag changed."""
        now = self._clock()
        stored = await self._challenges.consume(
            db, ceremony_id, purpose=AUTHENTICATE, binding=binding, now=now
        )
        if stored is None:
            raise PasskeyRejected("the sign-in expired or was used already; start again")
        presented = self._rp.presented(response)
        credential = await self._passkeys.by_credential_id(db, presented.credential_id)
        if credential is None:
            raise PasskeyRejected("this passkey is not registered here")
        try:
            if stored.user_id is not None and credential.user_id != stored.user_id:
                raise PasskeyRejected("this passkey belongs to another account")
            # L3 §7.2 step 6: the user handle, when returned, must be the credential's; for a
            # passwordless sign-in (no account identified first) it must be returned.
            if presented.user_handle is None and stored.user_id is None:
                raise PasskeyRejected("the authenticator named no account")
            if (
                presented.user_handle is not None
                and presented.user_handle != credential.user_handle
            ):
                raise PasskeyRejected("the passkey's account doesn't match")
            verified = self._rp.verify_assertion(
                response,
                challenge=stored.challenge,
                public_key=credential.public_key,
                require_user_verification=stored.user_verification == REQUIRED,
            )
            # L3 §6.1.3 and §7.2 step 19: backup eligibility is fixed at registration.
            if verified.backup_eligible != credential.backup_eligible:
                raise PasskeyRejected("the passkey's backup eligibility changed")
        except PasskeyRejected as rejected:
            self._audit(
                db,
                audit.FACTOR_FAILED,
                credential.user_id,
                actor,
                kind="passkey",
                passkey=credential.id,
                reason=str(rejected),
            )
            raise
        regressed = await self._apply_counter(db, credential, verified.sign_count, actor)
        await self._passkeys.record_use(
            db, credential.id, backed_up=verified.backed_up, now=now, counter_regressed=regressed
        )
        return PasskeySignIn(
            user_id=credential.user_id,
            passkey_id=credential.id,
            user_verified=verified.user_verified,
            counter_regressed=regressed,
        )

    async def _apply_counter(
        self, db: AsyncSession, credential: WebAuthnCredential, presented: int, actor: Actor
    ) -> bool:
        """WebAuthn L3 §6.1.1 (`counter_outcome`); True when the counter did not increase."""
        outcome = counter_outcome(credential.sign_count, presented)
        if outcome is CounterOutcome.NO_COUNTER:
            return False
        if outcome is CounterOutcome.ADVANCED and await self._passkeys.advance_counter(
            db, credential.id, presented
        ):
            return False
        # Not higher than the stored value (or a concurrent assertion stored a higher one
        # first): accepted, the stored value kept, the credential flagged, audited, and the
        # owner told.
        self._audit(
            db,
            audit.PASSKEY_COUNTER_REGRESSED,
            credential.user_id,
            actor,
            passkey=credential.id,
            stored=credential.sign_count,
            presented=presented,
        )
        regression = CounterRegression(
            credential.user_id, credential.id, credential.name, credential.sign_count, presented
        )
        if self.on_counter_regressed is not None:
            await self.on_counter_regressed(db, regression)
        else:
            log.warning(
                "passkey %s of user %s: signature counter did not increase (%d after %d)",
                credential.id,
                credential.user_id,
                presented,
                credential.sign_count,
            )
        return True

    @staticmethod
    def _audit(
        db: AsyncSession, type_: str, user_id: str | None, actor: Actor, **detail: Any
    ) -> None:
        audit.record(
            db,
            type_,
            user_id=user_id,
            session_id=actor.session_id,
            client_id=actor.client_id,
            ip=actor.ip,
            user_agent=actor.user_agent,
            detail=detail or None,
        )


__all__ = [
    "AvailableFactors",
    "CodeAccepted",
    "CounterRegressedHook",
    "CounterRegression",
    "PasskeyCeremony",
    "PasskeySignIn",
    "SecondFactorLogin",
    "has_second_factor",
]
