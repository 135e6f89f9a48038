"""The audit trail: logins, failures, refreshes, reuse, revocations, logouts. Never a token.

Every event is one row, written in the transaction of the change it records, except routine
refreshes (contract §4: "routine refreshes as counts rather than one row each"). A refresh is
the busiest write of the server: one row each was 86 million rows a day at the benchmark's
1,000 refreshes/s. Each process counts its refreshes in memory, per client, and writes the
counts as one row per client (`count`) once a minute and when it stops (RoutineCounts). Reuse,
grace replays and every failure stay one row each.

Counting in memory rather than in the refresh's own statement: an upsert of a shared counter row
folded into the rotation statement would add no round trip, but at 1,000 refreshes/s every
rotation would wait for the one before to commit its update of that row (one hot row lock per
client and minute), and PostgreSQL would keep a dead row version per refresh. The cost of
counting in memory is that a process killed without its shutdown loses up to a minute of counts
(the refreshes themselves, their sessions and tokens are stored as before).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_server.persistence.models import AuditEvent
from shared.service.db import transaction, utcnow

log = logging.getLogger("auth_server.audit")

# Event types (stable strings: they are an API at GET /admin/events).
LOGIN = "login"
LOGIN_FAILED = "login_failed"
LOGIN_THROTTLED = "login_throttled"
# Second factors and passkeys (auth_server/factors): every change, failure and lock.
LOGIN_MFA_REQUIRED = "login_mfa_required"  # the password was right; a second factor is due
FACTOR_ADDED = "factor_added"  # detail: kind (totp, passkey)
FACTOR_REMOVED = "factor_removed"
RECOVERY_CODES_GENERATED = "recovery_codes_generated"
RECOVERY_CODE_USED = "recovery_code_used"
PASSKEY_RENAMED = "passkey_renamed"
FACTOR_FAILED = "factor_failed"  # a wrong code, or a refused passkey assertion
FACTOR_THROTTLED = "factor_throttled"
FACTOR_LOCKED = "factor_locked"
FACTOR_LOCK_RESET = "factor_lock_reset"
PASSKEY_COUNTER_REGRESSED = "passkey_counter_regressed"  # WebAuthn L3 §6.1.1: a possible clone
REFRESH = "refresh"  # counted: one row per client and process and minute, with its `count`
REFRESH_REUSE = "refresh_reuse"
REFRESH_GRACE_REPLAY = "refresh_grace_replay"
REVOKE = "revoke"
LOGOUT = "logout"
LOGOUT_ALL = "logout_all"
ADMIN_END_USER = "admin_end_user_sessions"
PASSWORD_CHANGED = "password_changed"
CLIENT_CREDENTIALS = "client_credentials"
USER_REGISTERED = "user_registered"
KEY_RETIRED = "key_retired"
CODE_REUSE = "authorization_code_reuse"
CONSENT_GRANTED = "consent_granted"
BROWSER_LOGIN = "browser_login"

# Seconds between two writes of a process's routine counts: at most one row per client and
# process in this time (at 2 processes and one client, 2,880 rows a day whatever the rate).
COUNTS_INTERVAL = 60.0


def record(
    db: AsyncSession,
    type_: str,
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    client_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit row to the caller's transaction (it is committed with the change it records)."""
    db.add(
        AuditEvent(
            at=utcnow(),
            type=type_,
            user_id=user_id,
            session_id=session_id,
            client_id=client_id,
            ip=ip,
            user_agent=(user_agent or "")[:512] or None,
            detail=detail,
        )
    )


class RoutineCounts:
    """This process's routine events (refreshes) not yet written, by type and client."""

    def __init__(self, session_maker: async_sessionmaker[AsyncSession]) -> None:
        self._session_maker = session_maker
        self._counts: dict[tuple[str, str], int] = {}
        self._since: dt.datetime | None = None

    def add(self, type_: str, client_id: str) -> None:
        """Count one event (after the change it stands for has committed)."""
        key = (type_, client_id)
        self._counts[key] = self._counts.get(key, 0) + 1
        if self._since is None:
            self._since = utcnow()

    async def flush(self) -> int:
        """Write the counts so far, one row per type and client (`detail.since`: the first
        event they count); returns how many events were written. When the write fails, the
        counts are kept for the next flush."""
        if not self._counts:
            return 0
        counts, since = self._counts, self._since or utcnow()
        self._counts, self._since = {}, None
        try:
            async with transaction(self._session_maker) as db:
                now = utcnow()
                for (type_, client_id), count in counts.items():
                    db.add(
                        AuditEvent(
                            at=now,
                            type=type_,
                            client_id=client_id,
                            count=count,
                            detail={"since": since.isoformat()},
                        )
                    )
        except BaseException:
            for key, count in counts.items():
                self._counts[key] = self._counts.get(key, 0) + count
            self._since = min(since, self._since) if self._since is not None else since
            raise
        return sum(counts.values())

    async def run(self, *, stop: asyncio.Event, interval: float = COUNTS_INTERVAL) -> None:
        """Flush every `interval` seconds until `stop` is set (the lifespan flushes once more
        when the server stops)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            try:
                await self.flush()
            except Exception:  # kept for the next try: a database hiccup loses no count
                log.exception("could not write the audit counts")
