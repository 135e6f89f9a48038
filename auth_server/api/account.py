"""POST /users/me/password: change the password; every other session ends."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from auth_server.api.deps import ClientAddress, ContextDep, CurrentClaims, CurrentUser, DbSession
from auth_server.persistence.models import LoginSession
from auth_server.sessions import audit
from auth_server.sessions.service import end_sessions
from auth_server.users.policy import WeakPassword, check_password
from shared.db import utcnow
from shared.problem import Forbidden, Unprocessable

router = APIRouter(tags=["users"])


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=4096)
    new_password: str = Field(min_length=1, max_length=4096)


@router.post("/users/me/password", status_code=204, summary="Change my password")
async def change_password(
    change: PasswordChange,
    user: CurrentUser,
    claims: CurrentClaims,
    ctx: ContextDep,
    db: DbSession,
    request: Request,
    ip: ClientAddress,
) -> Response:
    ok, _ = await ctx.passwords.verify(change.current_password, user.password_hash)
    if not ok:
        raise Forbidden("the current password is wrong")
    try:
        check_password(change.new_password, username=user.username, email=user.email_normalized)
    except WeakPassword as exc:
        raise Unprocessable(str(exc)) from None
    user.password_hash = await ctx.passwords.hash(change.new_password)
    user.password_changed_at = utcnow()
    user_agent = request.headers.get("user-agent")
    audit.record(
        db,
        audit.PASSWORD_CHANGED,
        user_id=user.id,
        session_id=claims.sid,
        ip=ip,
        user_agent=user_agent,
    )
    # Every other session ends, each by its `sid`: the caller's own session stays usable.
    others = (
        await db.scalars(
            select(LoginSession).where(
                LoginSession.user_id == user.id,
                LoginSession.ended_at.is_(None),
                LoginSession.id != (claims.sid or ""),
            )
        )
    ).all()
    await end_sessions(
        ctx,
        db,
        others,
        reason="password_changed",
        audit_type=audit.LOGOUT,
        ip=ip,
        user_agent=user_agent,
    )
    return Response(status_code=204)
