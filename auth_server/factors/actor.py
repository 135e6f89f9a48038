"""Who is acting on an account's factors: for the audit trail, the throttle (the address), and
which session a factor change keeps (the one it was made from)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    ip: str | None
    user_agent: str | None
    session_id: str | None = None  # the session making the change: it is not ended
    client_id: str | None = None


__all__ = ["Actor"]
