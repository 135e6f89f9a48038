"""Managing an account's factors: what the account page calls.

Rules (issue 22):
- adding or removing a factor (and new recovery codes) needs a fresh sign-in: an `auth_time`
  within AUTH_REAUTH_MAX_AGE seconds, which the caller passes from the browser session or the
  access token; renaming a passkey doesn't;
- every change is audited and ends the account's other sessions (the acting one is kept): a
  session that may have been stolen doesn't outlive a change of the way in;
- the first second factor comes with ten recovery codes, shown once; removing the last second
  factor voids them (the caller warns first: `overview().second_factors`);
- enrolling a factor again is the owner's reset of its lock (they signed in with another way
  in); an operator's is `reset_lock`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server import audit
from auth_server.factors import recovery_codes, totp
from auth_server.factors.actor import Actor
from auth_server.factors.errors import (
    InvalidName,
    NotEnrolled,
    PasskeyRejected,
    ReauthenticationRequired,
    TooManyPasskeys,
    WrongCode,
)
from auth_server.factors.lock import KINDS, OTP, RECOVERY, FactorLocks
from auth_server.factors.login import PasskeyCeremony, has_second_factor
from auth_server.factors.repository import Challenges, Passkeys, RecoveryCodes, TotpCredentials
from auth_server.factors.webauthn import PREFERRED, RelyingParty
from auth_server.persistence.models import User, WebAuthnCredential
from auth_server.sessions.service import SessionService
from auth_server.settings import AuthSettings
from shared.service.db import utcnow

REGISTER = "register"
MAX_PASSKEYS = 20
MAX_NAME = 64
TOTP = "totp"
PASSKEY = "passkey"


@dataclass(frozen=True, slots=True)
class PasskeyInfo:
    """A passkey as the account page lists it (never its key or counter)."""

    id: str
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    backed_up: bool
    backup_eligible: bool
    transports: tuple[str, ...]
    # Its signature counter went backwards once (a possible clone): shown to the owner.
    counter_regressed_at: dt.datetime | None

    @classmethod
    def of(cls, row: WebAuthnCredential) -> PasskeyInfo:
        return cls(
            id=row.id,
            name=row.name,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            backed_up=row.backed_up,
            backup_eligible=row.backup_eligible,
            transports=tuple(row.transports.split()),
            counter_regressed_at=row.counter_regressed_at,
        )


@dataclass(frozen=True, slots=True)
class FactorOverview:
    totp: bool
    totp_last_used_at: dt.datetime | None
    passkeys: list[PasskeyInfo]
    recovery_codes_left: int
    locked: frozenset[str]  # OTP and/or RECOVERY

    @property
    def second_factors(self) -> int:
        """How many second factors: removing the last one warns."""
        return int(self.totp) + len(self.passkeys)

    @property
    def recovery_codes_low(self) -> bool:
        """The account page warns when 3 or fewer recovery codes remain."""
        return self.second_factors > 0 and self.recovery_codes_left <= recovery_codes.LOW


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    """Shown once: the seed as text and as a QR code of its otpauth URI."""

    id: str
    secret: str
    uri: str
    qr_svg: str


@dataclass(frozen=True, slots=True)
class FactorAdded:
    # The first second factor comes with recovery codes (shown once); None otherwise.
    recovery_codes: list[str] | None
    passkey: PasskeyInfo | None = None


@dataclass(frozen=True, slots=True)
class FactorRemoved:
    last_factor: bool  # no second factor is left: sign-in is by password alone again
    recovery_codes_voided: int


async def reset_factor_lock(
    db: AsyncSession,
    user_id: str,
    kinds: tuple[str, ...] = KINDS,
    *,
    actor: Actor,
    locks: FactorLocks | None = None,
) -> None:
    """Unlock an account's locked factors (NIST SP 800-63B §5.2.2: "until a reset"), audited:
    an operator's reset, from `FactorService.reset_lock` or `auth-server users reset-factors`."""
    await (locks or FactorLocks()).reset(db, user_id, kinds)
    audit.record(
        db,
        audit.FACTOR_LOCK_RESET,
        user_id=user_id,
        session_id=actor.session_id,
        client_id=actor.client_id,
        ip=actor.ip,
        user_agent=actor.user_agent,
        detail={"kinds": list(kinds)},
    )


def passkey_name(name: str) -> str:
    """A passkey's name as the person typed it: trimmed, 1 to 64 characters, no control
    characters (it is shown on pages and in mails)."""
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > MAX_NAME:
        raise InvalidName(f"a passkey's name has 1 to {MAX_NAME} characters")
    if any(unicodedata.category(char)[0] == "C" for char in cleaned):
        raise InvalidName("a passkey's name can't contain control characters")
    return cleaned


class FactorService:
    def __init__(
        self,
        settings: AuthSettings,
        *,
        sessions: SessionService,
        totp_credentials: TotpCredentials,
        recovery: RecoveryCodes,
        recovery_hasher: recovery_codes.RecoveryCodeHasher,
        passkeys: Passkeys,
        challenges: Challenges,
        locks: FactorLocks,
        relying_party: RelyingParty,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._totp = totp_credentials
        self._recovery = recovery
        self._hasher = recovery_hasher
        self._passkeys = passkeys
        self._challenges = challenges
        self._locks = locks
        self._rp = relying_party
        self._clock = clock

    # -- reading ---------------------------------------------------------------------------

    async def overview(self, db: AsyncSession, user_id: str) -> FactorOverview:
        stored = await self._totp.confirmed(db, user_id)
        totp_row_used = None
        if stored is not None and stored.last_used_step is not None:
            totp_row_used = dt.datetime.fromtimestamp(stored.last_used_step * totp.PERIOD, dt.UTC)
        return FactorOverview(
            totp=stored is not None,
            totp_last_used_at=totp_row_used,
            passkeys=await self.list_passkeys(db, user_id),
            recovery_codes_left=await self._recovery.remaining(db, user_id),
            locked=await self._locks.locked(db, user_id),
        )

    async def list_passkeys(self, db: AsyncSession, user_id: str) -> list[PasskeyInfo]:
        return [PasskeyInfo.of(row) for row in await self._passkeys.of_user(db, user_id)]

    def require_fresh_sign_in(self, auth_time: dt.datetime | int | None) -> None:
        """ReauthenticationRequired unless the person signed in within AUTH_REAUTH_MAX_AGE
        seconds (an `auth_time` from the browser session or the access token)."""
        max_age = self._settings.reauth_max_age
        if auth_time is None:
            raise ReauthenticationRequired(max_age)
        when = auth_time.timestamp() if isinstance(auth_time, dt.datetime) else float(auth_time)
        age = self._clock().timestamp() - when
        # A sign-in "in the future" is a clock skew of a second or two at most; more is no
        # sign-in we made.
        if age > max_age or age < -self._settings.leeway:
            raise ReauthenticationRequired(max_age)

    # -- TOTP ------------------------------------------------------------------------------

    async def begin_totp(
        self, db: AsyncSession, user_id: str, *, auth_time: dt.datetime | int | None
    ) -> TotpEnrolment:
        """A new TOTP seed, not yet counted: `confirm_totp` with a first code makes it the
        account's authenticator (replacing an earlier one). Show the secret and QR code once."""
        self.require_fresh_sign_in(auth_time)
        user = await self._user(db, user_id)
        seed = totp.new_seed()
        enrolment_id = await self._totp.start(db, user_id, seed, self._clock())
        issuer = self._settings.webauthn_rp_name
        uri = totp.provisioning_uri(seed, account=user.username, issuer=issuer)
        # Drawing the QR code takes about 90 ms of CPU (segno tries all eight masks, as ISO/IEC
        # 18004 §7.8 asks, for the most readable one): in a thread, not on the event loop.
        qr_svg = await asyncio.to_thread(totp.qr_code_svg, uri)
        return TotpEnrolment(enrolment_id, seed, uri, qr_svg)

    async def confirm_totp(
        self,
        db: AsyncSession,
        user_id: str,
        enrolment_id: str,
        code: str,
        *,
        auth_time: dt.datetime | int | None,
        actor: Actor,
    ) -> FactorAdded:
        """The enrolment's first code: it becomes the account's authenticator, and the code's
        step counts as used (a setup code never signs in). WrongCode when the code is wrong (the
        enrolment stays pending: try the next code); NotEnrolled when there's no such
        enrolment (or another request confirmed it first)."""
        self.require_fresh_sign_in(auth_time)
        pending = await self._totp.pending(db, user_id, enrolment_id)
        if pending is None:
            raise NotEnrolled("there is no TOTP enrolment to confirm; start again")
        now = self._clock()
        step = totp.matching_step(pending.seed, code, now.timestamp())
        if step is None:
            raise WrongCode("the code is wrong; check the device's clock and try the next one")
        first = not await has_second_factor(db, user_id)
        await self._locks.reset(db, user_id, (OTP,))  # the owner's reset of a locked TOTP
        if not await self._totp.confirm(db, user_id, enrolment_id, step, now):
            raise NotEnrolled("this enrolment was confirmed already")
        codes = await self._new_recovery_codes(db, user_id, now) if first else None
        await self._changed(db, user_id, actor, audit.FACTOR_ADDED, kind=TOTP)
        return FactorAdded(recovery_codes=codes)

    async def remove_totp(
        self, db: AsyncSession, user_id: str, *, auth_time: dt.datetime | int | None, actor: Actor
    ) -> FactorRemoved:
        self.require_fresh_sign_in(auth_time)
        if not await self._totp.remove(db, user_id):
            raise NotEnrolled("no authenticator app is set up")
        await self._changed(db, user_id, actor, audit.FACTOR_REMOVED, kind=TOTP)
        return await self._after_removal(db, user_id)

    # -- recovery codes --------------------------------------------------------------------

    async def generate_recovery_codes(
        self, db: AsyncSession, user_id: str, *, auth_time: dt.datetime | int | None, actor: Actor
    ) -> list[str]:
        """Ten new codes, shown once; every earlier one is void. Only beside a second factor."""
        self.require_fresh_sign_in(auth_time)
        if not await has_second_factor(db, user_id):
            raise NotEnrolled("recovery codes come with a second factor: set one up first")
        codes = await self._new_recovery_codes(db, user_id, self._clock())
        await self._changed(db, user_id, actor, audit.RECOVERY_CODES_GENERATED)
        return codes

    async def _new_recovery_codes(
        self, db: AsyncSession, user_id: str, now: dt.datetime
    ) -> list[str]:
        codes = recovery_codes.generate()
        hashes = [self._hasher.hash(user_id, code) for code in codes]
        await self._recovery.replace(db, user_id, [h for h in hashes if h is not None], now)
        await self._locks.reset(db, user_id, (RECOVERY,))
        return codes

    # -- passkeys --------------------------------------------------------------------------

    async def begin_passkey_registration(
        self,
        db: AsyncSession,
        user_id: str,
        *,
        binding: str,
        auth_time: dt.datetime | int | None,
    ) -> PasskeyCeremony:
        """Creation options for a new passkey (a discoverable credential); `binding` is what the
        ceremony is bound to (the browser session): only the same can finish it."""
        self.require_fresh_sign_in(auth_time)
        user = await self._user(db, user_id)
        existing = await self._passkeys.of_user(db, user_id)
        if len(existing) >= MAX_PASSKEYS:
            raise TooManyPasskeys(f"an account holds at most {MAX_PASSKEYS} passkeys")
        handle = await self._passkeys.user_handle(db, user_id)
        now = self._clock()
        ceremony_id, challenge = await self._challenges.create(
            db,
            purpose=REGISTER,
            binding=binding,
            user_id=user_id,
            user_handle=handle,
            user_verification=PREFERRED,
            now=now,
            ttl=self._settings.webauthn_challenge_ttl,
        )
        options = self._rp.registration_options(
            challenge=challenge,
            user_handle=handle,
            user_name=user.username,
            exclude=[row.credential_id for row in existing],
        )
        expires = now + dt.timedelta(seconds=self._settings.webauthn_challenge_ttl)
        return PasskeyCeremony(ceremony_id, options, expires)

    async def finish_passkey_registration(
        self,
        db: AsyncSession,
        user_id: str,
        ceremony_id: str,
        response: str | Mapping[str, Any],
        *,
        name: str,
        binding: str,
        auth_time: dt.datetime | int | None,
        actor: Actor,
    ) -> FactorAdded:
        """Verify the authenticator's response (RegistrationResponseJSON) and keep the passkey.
        PasskeyRejected when the ceremony is unknown, used, expired or someone else's, or the
        response fails (origin, RP ID, challenge, attestation), or the credential is registered
        already."""
        self.require_fresh_sign_in(auth_time)
        cleaned = passkey_name(name)
        now = self._clock()
        stored = await self._challenges.consume(
            db, ceremony_id, purpose=REGISTER, binding=binding, now=now
        )
        if stored is None or stored.user_id != user_id or stored.user_handle is None:
            raise PasskeyRejected("the registration expired or was used already; start again")
        new = self._rp.verify_registration(response, challenge=stored.challenge)
        if await self._passkeys.count(db, user_id) >= MAX_PASSKEYS:
            raise TooManyPasskeys(f"an account holds at most {MAX_PASSKEYS} passkeys")
        first = not await has_second_factor(db, user_id)
        row = await self._passkeys.add(
            db, user_id=user_id, user_handle=stored.user_handle, new=new, name=cleaned, now=now
        )
        codes = await self._new_recovery_codes(db, user_id, now) if first else None
        await self._changed(db, user_id, actor, audit.FACTOR_ADDED, kind=PASSKEY, passkey=row.id)
        return FactorAdded(recovery_codes=codes, passkey=PasskeyInfo.of(row))

    async def rename_passkey(
        self, db: AsyncSession, user_id: str, passkey_id: str, name: str, *, actor: Actor
    ) -> PasskeyInfo:
        """A new name; no fresh sign-in needed, and no session ends (nothing about the way in
        changed), but it is audited."""
        cleaned = passkey_name(name)
        if not await self._passkeys.rename(db, user_id, passkey_id, cleaned):
            raise NotEnrolled("no such passkey")
        self._audit(db, audit.PASSKEY_RENAMED, user_id, actor, passkey=passkey_id)
        row = await self._passkeys.get(db, user_id, passkey_id)
        assert row is not None
        await db.refresh(row)
        return PasskeyInfo.of(row)

    async def remove_passkey(
        self,
        db: AsyncSession,
        user_id: str,
        passkey_id: str,
        *,
        auth_time: dt.datetime | int | None,
        actor: Actor,
    ) -> FactorRemoved:
        self.require_fresh_sign_in(auth_time)
        if not await self._passkeys.remove(db, user_id, passkey_id):
            raise NotEnrolled("no such passkey")
        await self._changed(
            db, user_id, actor, audit.FACTOR_REMOVED, kind=PASSKEY, passkey=passkey_id
        )
        return await self._after_removal(db, user_id)

    # -- operators -------------------------------------------------------------------------

    async def reset_lock(
        self, db: AsyncSession, user_id: str, kinds: tuple[str, ...] = KINDS, *, actor: Actor
    ) -> None:
        """An operator's reset of locked factors (NIST SP 800-63B §5.2.2: "until a reset")."""
        await reset_factor_lock(db, user_id, kinds, actor=actor, locks=self._locks)

    # -- shared steps ----------------------------------------------------------------------

    async def _after_removal(self, db: AsyncSession, user_id: str) -> FactorRemoved:
        if await has_second_factor(db, user_id):
            return FactorRemoved(last_factor=False, recovery_codes_voided=0)
        # No second factor is left: recovery codes would be a way in beside nothing.
        voided = await self._recovery.remove(db, user_id)
        return FactorRemoved(last_factor=True, recovery_codes_voided=voided)

    async def _changed(
        self, db: AsyncSession, user_id: str, actor: Actor, type_: str, **detail: Any
    ) -> None:
        """Audit the change, then end every other session of the account (each audited and
        published by its `sid`, so resource servers refuse its tokens too)."""
        self._audit(db, type_, user_id, actor, **detail)
        await self._sessions.end_user_sessions(
            db,
            user_id,
            keep=actor.session_id,
            reason="factor_changed",
            audit_type=audit.LOGOUT,
            ip=actor.ip,
            user_agent=actor.user_agent,
        )

    async def _user(self, db: AsyncSession, user_id: str) -> User:
        user = await db.get(User, user_id)
        if user is None:
            raise NotEnrolled("no such account")
        return user

    @staticmethod
    def _audit(db: AsyncSession, type_: str, user_id: str, actor: Actor, **detail: Any) -> None:
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
    "MAX_PASSKEYS",
    "FactorAdded",
    "FactorOverview",
    "FactorRemoved",
    "FactorService",
    "PasskeyInfo",
    "TotpEnrolment",
    "passkey_name",
    "reset_factor_lock",
]
