"""POST /users (sign-up) and GET /users/me."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from auth_server.api.deps import ClientAddress, ContextDep, CurrentUser, DbSession
from auth_server.sessions import audit
from auth_server.users.service import InvalidIdentifier, UserExists, WeakPassword, register
from auth_server.users.throttle import ThrottleUnavailable
from shared.problem import Conflict, Forbidden, ServiceUnavailable, TooManyRequests, Unprocessable

router = APIRouter(tags=["users"])


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an `is_admin` is refused, never applied

    username: str = Field(min_length=1, max_length=256)
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=4096)


class UserOut(BaseModel):
    id: str
    username: str
    email: str
    is_admin: bool
    created_at: dt.datetime


@router.post("/users", status_code=201, response_model=UserOut, summary="Sign up")
async def sign_up(
    new: NewUser,
    request: Request,
    response: Response,
    ctx: ContextDep,
    db: DbSession,
    ip: ClientAddress,
) -> UserOut:
    if not ctx.settings.registration_open:
        raise Forbidden("registration is closed")
    try:
        wait = await ctx.throttle.registration_allowed(ip or "unknown")
    except ThrottleUnavailable:
        raise ServiceUnavailable(
            "sign-up is unavailable; try again shortly", headers={"Retry-After": "5"}
        ) from None
    if wait is not None:
        raise TooManyRequests(
            "too many sign-ups from this address", headers={"Retry-After": str(wait)}
        )
    try:
        user = await register(
            db, ctx.passwords, username=new.username, email=new.email, password=new.password
        )
    except (InvalidIdentifier, WeakPassword) as exc:
        raise Unprocessable(str(exc)) from None
    except UserExists:
        raise Conflict("the username or email is already registered") from None
    audit.record(
        db,
        audit.USER_REGISTERED,
        user_id=user.id,
        ip=ip,
        user_agent=request.headers.get("user-agent"),
    )
    await db.commit()
    response.headers["Location"] = "/users/me"
    return UserOut.model_validate(user, from_attributes=True)


@router.get("/users/me", response_model=UserOut, summary="The caller")
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)
