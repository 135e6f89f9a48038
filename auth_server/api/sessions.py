"""The caller's sessions: list them, end one, end all (log out everywhere)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel

from auth_server import audit
from auth_server.api.deps import (
    NO_USER_403,
    ClientAddress,
    CurrentClaims,
    DbSession,
    Sessions,
    UserAgent,
)
from auth_server.persistence.models import LoginSession
from shared.service.openapi import problems
from shared.service.problem import NotFound

router = APIRouter(tags=["sessions"])

SESSION_ID_MAX = 64


class SessionOut(BaseModel):
    id: str
    # Contract §8.3: `browser` (the sign-in at the hosted pages, no client) or `client` (a
    # client's sign-in, with `parent_id` naming the browser session it came through, if any).
    kind: Literal["browser", "client"]
    client_id: str | None
    parent_id: str | None
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


@router.get(
    "/sessions",
    response_model=list[SessionOut],
    summary="My active sessions",
    responses=problems({403: NO_USER_403}),
)
async def my_sessions(claims: CurrentClaims, db: DbSession, sessions: Sessions) -> list[SessionOut]:
    return [session_out(s, claims.sid) for s in await sessions.live(db, claims.sub)]


@router.delete(
    "/sessions/{session_id}",
    status_code=204,
    summary="End one of my sessions",
    responses=problems({403: NO_USER_403, 404: "No such session of mine (or it has ended)."}),
)
async def end_one(
    session_id: str,
    claims: CurrentClaims,
    db: DbSession,
    sessions: Sessions,
    ip: ClientAddress,
    user_agent: UserAgent,
) -> Response:
    mine = {s.id for s in await sessions.live(db, claims.sub)}
    if len(session_id) > SESSION_ID_MAX or session_id not in mine:
        raise NotFound("no such session")
    await sessions.end_session(
        db, session_id, reason="logout", audit_type=audit.LOGOUT, ip=ip, user_agent=user_agent
    )
    return Response(status_code=204)


@router.delete(
    "/sessions",
    status_code=204,
    summary="Log out everywhere",
    responses=problems({403: NO_USER_403}),
)
async def end_all(
    claims: CurrentClaims,
    db: DbSession,
    sessions: Sessions,
    ip: ClientAddress,
    user_agent: UserAgent,
) -> Response:
    await sessions.end_user_sessions(
        db,
        claims.sub,
        reason="logout_all",
        audit_type=audit.LOGOUT_ALL,
        ip=ip,
        user_agent=user_agent,
        not_before=True,
    )
    return Response(status_code=204)
