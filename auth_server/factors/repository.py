"""The factors' tables, and the conditional statements that make each factor single-use.

Every "use once" decision is one conditional UPDATE or DELETE whose row count says who won, so
that of two requests racing with the same code or challenge exactly one succeeds, on PostgreSQL
(row locks, READ COMMITTED re-checks the condition after a wait) and on SQLite (BEGIN IMMEDIATE
serializes writers):
- a TOTP step: `last_used_step < :step`;
- a recovery code: `used_at IS NULL`;
- a WebAuthn challenge: deleted by the statement that reads it;
- a passkey's counter: `sign_count < :count`.
Everything here only flushes: the caller's unit of work commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.factors.errors import PasskeyRejected
from auth_server.factors.webauthn import NewPasskey
from auth_server.keys.crypto import decrypt_secret, derive_key, encrypt_secret
from auth_server.persistence.models import (
    RecoveryCode,
    TotpCredential,
    WebAuthnChallenge,
    WebAuthnCredential,
)

CHALLENGE_BYTES = 32  # L3 §13.4.3: at least 16 random bytes
USER_HANDLE_BYTES = 32  # L3 §5.4.3: at most 64 random bytes, never personal data


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)


def binding_hash(binding: str) -> str:
    return hashlib.sha256(binding.encode()).hexdigest()


# -- TOTP ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredTotp:
    id: str
    seed: str
    confirmed_at: dt.datetime | None
    last_used_step: int | None


class TotpCredentials:
    """TOTP seeds, AES-GCM encrypted under their own key derived from AUTH_KEY_ENCRYPTION_KEY,
    with the row's id and account as associated data (a seed copied to another row or account
    doesn't decrypt)."""

    def __init__(self, key_encryption_secret: bytes) -> None:
        self._key = derive_key(key_encryption_secret, "notes-auth totp seeds v1")

    @staticmethod
    def _associated(credential_id: str, user_id: str) -> bytes:
        return f"totp:{credential_id}:{user_id}".encode()

    def _open(self, row: TotpCredential) -> StoredTotp:
        seed = decrypt_secret(
            row.secret_encrypted, self._key, self._associated(row.id, row.user_id)
        ).decode()
        return StoredTotp(row.id, seed, row.confirmed_at, row.last_used_step)

    async def start(self, db: AsyncSession, user_id: str, seed: str, now: dt.datetime) -> str:
        """A new enrolment, not yet confirmed; one pending at a time (an earlier one is void)."""
        await db.execute(
            delete(TotpCredential).where(
                TotpCredential.user_id == user_id, TotpCredential.confirmed_at.is_(None)
            )
        )
        credential_id = secrets.token_urlsafe(16)
        db.add(
            TotpCredential(
                id=credential_id,
                user_id=user_id,
                secret_encrypted=encrypt_secret(
                    seed.encode(), self._key, self._associated(credential_id, user_id)
                ),
                created_at=now,
            )
        )
        await db.flush()
        return credential_id

    async def pending(self, db: AsyncSession, user_id: str, enrolment_id: str) -> StoredTotp | None:
        row = await db.scalar(
            select(TotpCredential).where(
                TotpCredential.id == enrolment_id,
                TotpCredential.user_id == user_id,
                TotpCredential.confirmed_at.is_(None),
            )
        )
        return self._open(row) if row is not None else None

    async def confirmed(self, db: AsyncSession, user_id: str) -> StoredTotp | None:
        row = await db.scalar(
            select(TotpCredential).where(
                TotpCredential.user_id == user_id, TotpCredential.confirmed_at.is_not(None)
            )
        )
        return self._open(row) if row is not None else None

    async def confirm(
        self, db: AsyncSession, user_id: str, enrolment_id: str, step: int, now: dt.datetime
    ) -> bool:
        """Make the enrolment the account's authenticator, with its setup code's step as the
        last one used (so the setup code can't sign in). False when another request confirmed
        it first. An earlier authenticator is replaced."""
        await db.execute(
            delete(TotpCredential).where(
                TotpCredential.user_id == user_id,
                TotpCredential.confirmed_at.is_not(None),
                TotpCredential.id != enrolment_id,
            )
        )
        result = await db.execute(
            update(TotpCredential)
            .where(
                TotpCredential.id == enrolment_id,
                TotpCredential.user_id == user_id,
                TotpCredential.confirmed_at.is_(None),
            )
            .values(confirmed_at=now, last_used_step=step, last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    async def use_step(
        self, db: AsyncSession, credential_id: str, step: int, now: dt.datetime
    ) -> bool:
        """Compare-and-swap on the last used step: True for exactly one request per step, and
        never for a step at or before one already used (RFC 6238 §5.2: "the verifier MUST NOT
        accept the second attempt of the OTP after the successful validation")."""
        result = await db.execute(
            update(TotpCredential)
            .where(
                TotpCredential.id == credential_id,
                TotpCredential.confirmed_at.is_not(None),
                (TotpCredential.last_used_step.is_(None)) | (TotpCredential.last_used_step < step),
            )
            .values(last_used_step=step, last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    async def remove(self, db: AsyncSession, user_id: str) -> int:
        """Remove the account's authenticator and any pending enrolment; how many confirmed."""
        confirmed = await db.scalar(
            select(func.count())
            .select_from(TotpCredential)
            .where(TotpCredential.user_id == user_id, TotpCredential.confirmed_at.is_not(None))
        )
        await db.execute(delete(TotpCredential).where(TotpCredential.user_id == user_id))
        return int(confirmed or 0)

    async def sweep_pending(self, db: AsyncSession, before: dt.datetime) -> int:
        result = await db.execute(
            delete(TotpCredential).where(
                TotpCredential.confirmed_at.is_(None), TotpCredential.created_at < before
            )
        )
        return _rowcount(result)


# -- recovery codes --------------------------------------------------------------------------


class RecoveryCodes:
    async def replace(
        self, db: AsyncSession, user_id: str, hashes: Sequence[str], now: dt.datetime
    ) -> None:
        """The account's codes become these: every earlier one, used or not, is void."""
        await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        db.add_all(
            RecoveryCode(user_id=user_id, code_hash=code_hash, created_at=now)
            for code_hash in hashes
        )
        await db.flush()

    async def use(self, db: AsyncSession, user_id: str, code_hash: str, now: dt.datetime) -> bool:
        """Compare-and-swap: True for exactly one request per unused code."""
        result = await db.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user_id,
                RecoveryCode.code_hash == code_hash,
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    async def remaining(self, db: AsyncSession, user_id: str) -> int:
        count = await db.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        )
        return int(count or 0)

    async def remove(self, db: AsyncSession, user_id: str) -> int:
        result = await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        return _rowcount(result)


# -- passkeys --------------------------------------------------------------------------------


class Passkeys:
    async def of_user(self, db: AsyncSession, user_id: str) -> list[WebAuthnCredential]:
        rows = await db.scalars(
            select(WebAuthnCredential)
            .where(WebAuthnCredential.user_id == user_id)
            .order_by(WebAuthnCredential.created_at, WebAuthnCredential.id)
        )
        return list(rows.all())

    async def count(self, db: AsyncSession, user_id: str) -> int:
        count = await db.scalar(
            select(func.count())
            .select_from(WebAuthnCredential)
            .where(WebAuthnCredential.user_id == user_id)
        )
        return int(count or 0)

    async def get(
        self, db: AsyncSession, user_id: str, passkey_id: str
    ) -> WebAuthnCredential | None:
        return await db.scalar(
            select(WebAuthnCredential).where(
                WebAuthnCredential.id == passkey_id, WebAuthnCredential.user_id == user_id
            )
        )

    async def by_credential_id(
        self, db: AsyncSession, credential_id: str
    ) -> WebAuthnCredential | None:
        return await db.scalar(
            select(WebAuthnCredential).where(WebAuthnCredential.credential_id == credential_id)
        )

    async def user_handle(self, db: AsyncSession, user_id: str) -> bytes:
        """The account's WebAuthn user handle: the one its passkeys were made for, or a new
        random one (L3 §14.6.1: never an identifier that reveals the account)."""
        handle = await db.scalar(
            select(WebAuthnCredential.user_handle)
            .where(WebAuthnCredential.user_id == user_id)
            .order_by(WebAuthnCredential.created_at)
            .limit(1)
        )
        return handle if handle is not None else secrets.token_bytes(USER_HANDLE_BYTES)

    async def add(
        self,
        db: AsyncSession,
        *,
        user_id: str,
        user_handle: bytes,
        new: NewPasskey,
        name: str,
        now: dt.datetime,
    ) -> WebAuthnCredential:
        """L3 §7.1 step 26: a credential id registered already (to this account or another) is
        refused; the unique constraint decides between racing registrations."""
        row = WebAuthnCredential(
            id=secrets.token_urlsafe(16),
            user_id=user_id,
            credential_id=new.credential_id,
            user_handle=user_handle,
            public_key=new.public_key,
            sign_count=new.sign_count,
            backup_eligible=new.backup_eligible,
            backed_up=new.backed_up,
            transports=" ".join(new.transports),
            aaguid=new.aaguid,
            name=name,
            created_at=now,
        )
        try:
            async with db.begin_nested():
                db.add(row)
        except IntegrityError:
            raise PasskeyRejected("this passkey is registered already") from None
        return row

    async def advance_counter(self, db: AsyncSession, passkey_id: str, count: int) -> bool:
        """Compare-and-swap: store a higher signature counter; False when the stored one is
        already as high (a concurrent assertion stored a higher one: this one didn't
        increase)."""
        result = await db.execute(
            update(WebAuthnCredential)
            .where(WebAuthnCredential.id == passkey_id, WebAuthnCredential.sign_count < count)
            .values(sign_count=count)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    async def record_use(
        self,
        db: AsyncSession,
        passkey_id: str,
        *,
        backed_up: bool,
        now: dt.datetime,
        counter_regressed: bool,
    ) -> None:
        values: dict[str, Any] = {"backed_up": backed_up, "last_used_at": now}
        if counter_regressed:
            values["counter_regressed_at"] = now
        await db.execute(
            update(WebAuthnCredential)
            .where(WebAuthnCredential.id == passkey_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def rename(self, db: AsyncSession, user_id: str, passkey_id: str, name: str) -> bool:
        result = await db.execute(
            update(WebAuthnCredential)
            .where(WebAuthnCredential.id == passkey_id, WebAuthnCredential.user_id == user_id)
            .values(name=name)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    async def remove(self, db: AsyncSession, user_id: str, passkey_id: str) -> bool:
        result = await db.execute(
            delete(WebAuthnCredential).where(
                WebAuthnCredential.id == passkey_id, WebAuthnCredential.user_id == user_id
            )
        )
        return _rowcount(result) == 1


# -- WebAuthn challenges ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredChallenge:
    challenge: bytes
    user_id: str | None
    user_handle: bytes | None
    user_verification: str


class Challenges:
    async def create(
        self,
        db: AsyncSession,
        *,
        purpose: str,
        binding: str,
        user_id: str | None,
        user_handle: bytes | None,
        user_verification: str,
        now: dt.datetime,
        ttl: int,
    ) -> tuple[str, bytes]:
        """A new ceremony: (its id, for the page to send back; its random challenge)."""
        ceremony_id = secrets.token_urlsafe(32)
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        db.add(
            WebAuthnChallenge(
                id=ceremony_id,
                purpose=purpose,
                challenge=challenge,
                user_id=user_id,
                binding_hash=binding_hash(binding),
                user_handle=user_handle,
                user_verification=user_verification,
                created_at=now,
                expires_at=now + dt.timedelta(seconds=ttl),
            )
        )
        await db.flush()
        return ceremony_id, challenge

    async def consume(
        self, db: AsyncSession, ceremony_id: str, *, purpose: str, binding: str, now: dt.datetime
    ) -> StoredChallenge | None:
        """The ceremony's challenge, deleted by the same statement that reads it: of two
        requests finishing one ceremony, one gets it. None when it is unknown, used, expired,
        for another purpose, or bound to someone else (who then can't burn it either)."""
        if not ceremony_id or len(ceremony_id) > 64:
            return None
        row = (
            await db.execute(
                delete(WebAuthnChallenge)
                .where(
                    WebAuthnChallenge.id == ceremony_id,
                    WebAuthnChallenge.purpose == purpose,
                    WebAuthnChallenge.binding_hash == binding_hash(binding),
                    WebAuthnChallenge.expires_at > now,
                )
                .returning(
                    WebAuthnChallenge.challenge,
                    WebAuthnChallenge.user_id,
                    WebAuthnChallenge.user_handle,
                    WebAuthnChallenge.user_verification,
                )
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if row is None:
            return None
        return StoredChallenge(row[0], row[1], row[2], row[3])


__all__ = [
    "Challenges",
    "Passkeys",
    "RecoveryCodes",
    "StoredChallenge",
    "StoredTotp",
    "TotpCredentials",
    "binding_hash",
]
