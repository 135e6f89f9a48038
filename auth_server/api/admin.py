"""Admin: every active session, ending all sessions of one user, and the audit trail."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from auth_server import audit
from auth_server.api.deps import (
    ClientAddress,
    CurrentClaims,
    CurrentUser,
    DbSession,
    Sessions,
    UserAgent,
    bearer,
)
from auth_server.api.sessions import SessionOut, session_out
from auth_server.oauth.scopes import ADMIN_SCOPE
from auth_server.persistence.models import AuditEvent, User
from shared.service.openapi import WWW_AUTHENTICATE_BEARER, problem, problems
from shared.service.problem import Forbidden, NotFound, ProblemError
from shared.text import is_ascii_number

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses={
        403: problem(
            "The token lacks the `admin` scope (an RFC 6750 `insufficient_scope` challenge), "
            "or its user is not an administrator.",
            headers={"WWW-Authenticate": {**WWW_AUTHENTICATE_BEARER, "required": False}},
        )
    },
)

USER_ID_MAX = 36
# Audit event ids are 64-bit integers: 18 digits always fit (a 20-digit cursor was a 500).
CURSOR_DIGITS = 18


async def require_admin(user: CurrentUser, claims: CurrentClaims) -> User:
    """Every /admin route needs a token carrying the `admin` scope (RFC 6750 §3.1
    insufficient_scope otherwise, an admin's narrowed token included), of an admin."""
    if ADMIN_SCOPE not in claims.scopes:
        raise bearer.challenge(
            status=403,
            error="insufficient_scope",
            description="the access token lacks a required scope",
            scope=ADMIN_SCOPE,
        )
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
    count: int = Field(
        description="How many events the row stands for: 1, or the routine refreshes of one "
        "client that one server process counted since its previous write (`detail.since`)."
    )


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


@router.get("/sessions", response_model=list[AdminSessionOut], summary="Every active session")
async def all_sessions(_: Admin, db: DbSession, sessions: Sessions) -> list[AdminSessionOut]:
    return [
        AdminSessionOut(**session_out(s).model_dump(), sub=s.user_id)
        for s in await sessions.live(db)
    ]


@router.delete(
    "/users/{user_id}/sessions",
    status_code=204,
    summary="End every session of a user",
    responses=problems({404: "No such user."}),
)
async def end_user_sessions(
    user_id: str,
    _: Admin,
    db: DbSession,
    sessions: Sessions,
    ip: ClientAddress,
    user_agent: UserAgent,
) -> Response:
    if len(user_id) > USER_ID_MAX or await db.get(User, user_id) is None:
        raise NotFound("no such user")
    await sessions.end_user_sessions(
        db,
        user_id,
        reason="admin",
        audit_type=audit.ADMIN_END_USER,
        ip=ip,
        user_agent=user_agent,
        not_before=True,
    )
    return Response(status_code=204)


@router.get(
    "/events",
    response_model=EventPage,
    summary="The audit trail, newest first",
    responses=problems({400: "The cursor is not one this server gave out."}),
)
async def events(
    _: Admin,
    db: DbSession,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(
        None,
        max_length=20,
        description="The `next_cursor` of the previous page.",
        json_schema_extra={"pattern": f"^[0-9]{{1,{CURSOR_DIGITS}}}$", "maxLength": CURSOR_DIGITS},
    ),
) -> EventPage:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if cursor is not None:
        if not is_ascii_number(cursor) or len(cursor) > CURSOR_DIGITS:
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
            count=r.count,
        )
        for r in rows[:limit]
    ]
    return EventPage(
        items=items, next_cursor=str(rows[limit - 1].id) if len(rows) > limit else None
    )
