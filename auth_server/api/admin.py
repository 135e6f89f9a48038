"""Admin: every active session, ending all sessions of one user, and the audit trail."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import select

from auth_server.api.deps import ClientAddress, ContextDep, CurrentUser, DbSession
from auth_server.api.sessions import SessionOut, session_out
from auth_server.persistence.models import AuditEvent, User
from auth_server.sessions import audit
from auth_server.sessions.service import end_sessions, live_sessions
from shared.problem import Forbidden, NotFound, ProblemError

router = APIRouter(prefix="/admin", tags=["admin"])


async def require_admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("administrators only")
    return user


Admin = Annotated[User, Depends(require_admin)]


class AdminSessionOut(SessionOut):
    sub: str


class EventOut(BaseModel):
    id: int
    at: dt.datetime
    type: str
    sub: str | None
    sid: str | None
    client_id: str | None
    ip: str | None
    user_agent: str | None
    detail: dict[str, Any] | None


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


@router.get("/sessions", response_model=list[AdminSessionOut], summary="Every active session")
async def all_sessions(_: Admin, db: DbSession) -> list[AdminSessionOut]:
    return [
        AdminSessionOut(**session_out(s).model_dump(), sub=s.user_id)
        for s in await live_sessions(db)
    ]


@router.delete("/users/{user_id}/sessions", status_code=204, summary="End every session of a user")
async def end_user_sessions(
    user_id: str, admin: Admin, ctx: ContextDep, db: DbSession, request: Request, ip: ClientAddress
) -> Response:
    if len(user_id) > 36 or await db.get(User, user_id) is None:
        raise NotFound("no such user")
    await end_sessions(
        ctx,
        db,
        await live_sessions(db, user_id),
        reason="admin",
        audit_type=audit.ADMIN_END_USER,
        ip=ip,
        user_agent=request.headers.get("user-agent"),
        user_not_before=user_id,
    )
    return Response(status_code=204)


@router.get("/events", response_model=EventPage, summary="The audit trail, newest first")
async def events(
    _: Admin,
    db: DbSession,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=20),
) -> EventPage:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if cursor is not None:
        if not cursor.isdigit():
            raise ProblemError("the cursor is not valid", status=400)
        query = query.where(AuditEvent.id < int(cursor))
    rows = (await db.scalars(query)).all()
    items = [
        EventOut(
            id=r.id,
            at=r.at,
            type=r.type,
            sub=r.user_id,
            sid=r.session_id,
            client_id=r.client_id,
            ip=r.ip,
            user_agent=r.user_agent,
            detail=r.detail,
        )
        for r in rows[:limit]
    ]
    return EventPage(
        items=items, next_cursor=str(rows[limit - 1].id) if len(rows) > limit else None
    )
