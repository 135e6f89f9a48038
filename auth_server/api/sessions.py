"""The caller's sessions: list them, end one, end all (log out everywhere)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from auth_server.api.deps import ClientAddress, ContextDep, CurrentClaims, DbSession
from auth_server.persistence.models import LoginSession
from auth_server.sessions import audit
from auth_server.sessions.service import end_sessions, is_live, live_sessions
from shared.db import utcnow
from shared.problem import NotFound

router = APIRouter(tags=["sessions"])


class SessionOut(BaseModel):
    id: str
    client_id: str
    scope: str
    created_at: dt.datetime
    last_used_at: dt.datetime
    expires_at: dt.datetime
    ip: str | None
    user_agent: str | None
    current: bool = False


def session_out(session: LoginSession, current_sid: str | None = None) -> SessionOut:
    out = SessionOut.model_validate(session, from_attributes=True)
    out.current = session.id == current_sid
    return out


@router.get("/sessions", response_model=list[SessionOut], summary="My active sessions")
async def my_sessions(claims: CurrentClaims, db: DbSession) -> list[SessionOut]:
    return [session_out(s, claims.sid) for s in await live_sessions(db, claims.sub)]


@router.delete("/sessions/{session_id}", status_code=204, summary="End one of my sessions")
async def end_one(
    session_id: str,
    claims: CurrentClaims,
    ctx: ContextDep,
    db: DbSession,
    request: Request,
    ip: ClientAddress,
) -> Response:
    session = await db.get(LoginSession, session_id) if len(session_id) <= 64 else None
    if session is None or session.user_id != claims.sub or not is_live(session, utcnow()):
        raise NotFound("no such session")
    await end_sessions(
        ctx,
        db,
        [session],
        reason="logout",
        audit_type=audit.LOGOUT,
        ip=ip,
        user_agent=request.headers.get("user-agent"),
    )
    return Response(status_code=204)


@router.delete("/sessions", status_code=204, summary="Log out everywhere")
async def end_all(
    claims: CurrentClaims, ctx: ContextDep, db: DbSession, request: Request, ip: ClientAddress
) -> Response:
    sessions = await live_sessions(db, claims.sub)
    await end_sessions(
        ctx,
        db,
        sessions,
        reason="logout_all",
        audit_type=audit.LOGOUT_ALL,
        ip=ip,
        user_agent=request.headers.get("user-agent"),
        user_not_before=claims.sub,
    )
    return Response(status_code=204)
