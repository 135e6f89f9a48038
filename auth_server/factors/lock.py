"""The factor lock of NIST SP 800-63B §5.2.2: "the verifier SHALL limit consecutive failed
authentication attempts on a single subscriber account to no more than 100".

The window throttle (factors/throttle.py) slows guessing down; it does not bound it: at 5 wrong
codes per 15 minutes, with three codes good at any moment (±1 step), a month of guessing wins
with odds of about 1 - (1 - 3e-6)^14400, some 4%, and a year about 40%. The lock bounds the total:
after LOCK_THRESHOLD failures in a row the factor is refused, right or wrong, until a reset (its
owner enrolling it again, or an operator), which leaves an attacker 100 * 3e-6 = 0.03% odds.

The count is per account and kind of factor (`otp`: TOTP codes; `recovery`: recovery codes), so
that a locked authenticator app leaves the recovery codes working. It is taken before each check
(one atomic upsert), so parallel wrong codes can't check more than the threshold; a success sets
it back to zero. It lives in the request's transaction: on PostgreSQL the row lock it takes
serializes one account's checks until commit, which also orders them after each other's
compare-and-swap.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.persistence.models import FactorFailures
from shared.service.db import UTCDateTime

LOCK_THRESHOLD = 100
OTP = "otp"  # TOTP codes
RECOVERY = "recovery"  # recovery codes
KINDS = (OTP, RECOVERY)

_COUNT = text(
    "INSERT INTO factor_failures (user_id, kind, count, updated_at) "
    "VALUES (:user_id, :kind, 1, :now) "
    "ON CONFLICT (user_id, kind) DO UPDATE SET "
    "count = factor_failures.count + 1, updated_at = :now "
    "RETURNING count"
).bindparams(bindparam("now", type_=UTCDateTime))


class FactorLocks:
    async def count(self, db: AsyncSession, user_id: str, kind: str, now: dt.datetime) -> int:
        """Count one attempt before it is checked; returns the consecutive attempts counted, this
        one included. Above LOCK_THRESHOLD the factor is locked: don't check it."""
        row = (await db.execute(_COUNT, {"user_id": user_id, "kind": kind, "now": now})).one()
        return int(row[0])

    async def succeeded(self, db: AsyncSession, user_id: str, kind: str, now: dt.datetime) -> None:
        await db.execute(
            update(FactorFailures)
            .where(FactorFailures.user_id == user_id, FactorFailures.kind == kind)
            .values(count=0, updated_at=now)
            .execution_options(synchronize_session=False)
        )

    async def lock(self, db: AsyncSession, user_id: str, kind: str, now: dt.datetime) -> None:
        await db.execute(
            update(FactorFailures)
            .where(
                FactorFailures.user_id == user_id,
                FactorFailures.kind == kind,
                FactorFailures.locked_at.is_(None),
            )
            .values(locked_at=now)
            .execution_options(synchronize_session=False)
        )

    async def locked(self, db: AsyncSession, user_id: str) -> frozenset[str]:
        rows = await db.scalars(
            select(FactorFailures.kind).where(
                FactorFailures.user_id == user_id, FactorFailures.count >= LOCK_THRESHOLD
            )
        )
        return frozenset(rows.all())

    async def reset(self, db: AsyncSession, user_id: str, kinds: tuple[str, ...] = KINDS) -> None:
        """Unlock: the failures of these kinds are forgotten."""
        await db.execute(
            delete(FactorFailures).where(
                FactorFailures.user_id == user_id, FactorFailures.kind.in_(kinds)
            )
        )


__all__ = ["KINDS", "LOCK_THRESHOLD", "OTP", "RECOVERY", "FactorLocks"]
