"""Purges what no longer matters: expired or long-ended sessions (their refresh tokens go with
them), expired feed entries, audit events past AUTH_AUDIT_RETENTION_DAYS, attempt counters
whose window has ended, grace-window answers past their window, expired WebAuthn challenges and
TOTP enrolments never confirmed.

Each pass deletes in bounded batches by indexed expiry columns, so its cost follows the amount
of expired data, not the number of live sessions, and it never holds long locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_server.persistence.models import (
    AuditEvent,
    AuthorizationCode,
    LoginFlow,
    LoginSession,
    RateLimitCounter,
    RefreshToken,
    Revocation,
    TotpCredential,
    WebAuthnChallenge,
)
from auth_server.settings import AuthSettings
from shared.service.db import utcnow

log = logging.getLogger("auth_server.sweeper")
CODE_RETENTION = dt.timedelta(hours=1)

PENDING_TOTP_LIFETIME = 86_400  # seconds an unconfirmed TOTP enrolment is kept


async def _delete_batches(
    session_maker: async_sessionmaker[AsyncSession],
    model: type,
    condition: object,
    batch: int,
    pk: Any = None,
) -> int:
    total = 0
    pk = pk if pk is not None else model.id  # type: ignore[attr-defined]
    while True:
        async with session_maker() as db, db.begin():
            ids = (await db.scalars(select(pk).where(condition).limit(batch))).all()  # type: ignore[arg-type]
            if not ids:
                return total
            if model is LoginSession:
                await db.execute(delete(RefreshToken).where(RefreshToken.session_id.in_(ids)))
            await db.execute(delete(model).where(pk.in_(ids)))
            total += len(ids)
        if len(ids) < batch:
            return total


async def sweep_once(
    session_maker: async_sessionmaker[AsyncSession], settings: AuthSettings
) -> dict[str, int]:
    now = utcnow()
    batch = settings.sweep_batch_size
    # Ended sessions stay listable for audits a while.
    retention = dt.timedelta(days=settings.ended_session_retention_days)
    counts = {
        "sessions": await _delete_batches(
            session_maker,
            LoginSession,
            (LoginSession.expires_at < now) | (LoginSession.ended_at < now - retention),
            batch,
        ),
        "revocations": await _delete_batches(
            session_maker, Revocation, Revocation.expires_at < now, batch
        ),
        # A used code is kept an hour past its 60 s, so that a late replay still ends what its
        # first use started (RFC 6749 §4.1.2); an unfinished sign-in expires with its flow.
        "authorization_codes": await _delete_batches(
            session_maker,
            AuthorizationCode,
            AuthorizationCode.expires_at < now - CODE_RETENTION,
            batch,
            pk=AuthorizationCode.code_hash,
        ),
        "login_flows": await _delete_batches(
            session_maker, LoginFlow, LoginFlow.expires_at < now, batch
        ),
        "audit_events": await _delete_batches(
            session_maker,
            AuditEvent,
            AuditEvent.at < now - dt.timedelta(days=settings.audit_retention_days),
            batch,
        ),
    }
    async with session_maker() as db, db.begin():
        expired = await db.execute(
            delete(RateLimitCounter).where(RateLimitCounter.window_end <= now.timestamp())
        )
    counts["rate_limit_counters"] = int(expired.rowcount or 0)  # type: ignore[attr-defined]
    grace_cutoff = now - dt.timedelta(seconds=settings.refresh_reuse_grace + 5)
    async with session_maker() as db, db.begin():
        result = await db.execute(
            update(RefreshToken)
            .where(RefreshToken.grace_response.is_not(None), RefreshToken.used_at < grace_cutoff)
            .values(grace_response=None)
        )
    counts["grace_answers"] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    counts["webauthn_challenges"] = await _delete_batches(
        session_maker, WebAuthnChallenge, WebAuthnChallenge.expires_at < now, batch
    )
    counts["totp_enrolments"] = await _delete_batches(
        session_maker,
        TotpCredential,
        TotpCredential.confirmed_at.is_(None)
        & (TotpCredential.created_at < now - dt.timedelta(seconds=PENDING_TOTP_LIFETIME)),
        batch,
    )
    return counts


async def run_sweeper(
    session_maker: async_sessionmaker[AsyncSession], settings: AuthSettings, *, stop: asyncio.Event
) -> None:
    # The first pass comes one interval after start: a start (or a test) is never raced by it.
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.sweep_interval)
        if stop.is_set():
            return
        try:
            counts = await sweep_once(session_maker, settings)
            if any(counts.values()):
                log.info("swept %s", counts)
        except Exception:  # the sweeper must outlive a database hiccup
            log.exception("sweep failed")
