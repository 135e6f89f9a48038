"""The audit trail: logins, failures, refreshes, reuse, revocations, logouts. Never a token."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.persistence.models import AuditEvent
from shared.service.db import utcnow

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
REFRESH = "refresh"
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
