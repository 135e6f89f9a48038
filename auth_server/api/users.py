"""POST /users (sign-up) and GET /users/me."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from auth_server import audit
from auth_server.api.deps import (
    NO_USER_403,
    ClientAddress,
    CurrentUser,
    DbSession,
    Passwords,
    Settings,
    Throttle,
    UserAgent,
)
from auth_server.api.openapi import EMAIL_SCHEMA, PASSWORD_SCHEMA, USERNAME_SCHEMA
from auth_server.users.passwords import HashingBusy
from auth_server.users.service import (
    InvalidIdentifier,
    UserExists,
    WeakPassword,
    new_user,
    register,
)
from auth_server.users.throttle import Throttled, ThrottleUnavailable
from shared.service.openapi import header, problems, too_many_requests
from shared.service.problem import (
    Conflict,
    Forbidden,
    ServiceUnavailable,
    TooManyRequests,
    Unprocessable,
)

router = APIRouter(tags=["users"])


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an `is_admin` is refused, never applied

    username: str = Field(min_length=1, max_length=256, json_schema_extra=USERNAME_SCHEMA)
    email: str = Field(min_length=3, max_length=320, json_schema_extra=EMAIL_SCHEMA)
    password: str = Field(min_length=1, max_length=4096, json_schema_extra=PASSWORD_SCHEMA)


class UserOut(BaseModel):
    id: str
    username: str
    email: str
    is_admin: bool
    created_at: dt.datetime


@router.post(
    "/users",
    status_code=201,
    response_model=UserOut,
    summary="Sign up",
    responses={
        201: {"headers": {"Location": header("`/users/me`.", required=True)}},
        **problems(
            {
                403: "Registration is closed (AUTH_REGISTRATION_OPEN=false).",
                409: "The username or the email address is already registered.",
                422: "A weak password, or an invalid username or email address.",
            }
        ),
        **too_many_requests("Too many sign-ups from this address (AUTH_REGISTRATION_IP_LIMIT)."),
    },
)
async def sign_up(
    new: NewUser,
    response: Response,
    db: DbSession,
    settings: Settings,
    passwords: Passwords,
    throttle: Throttle,
    ip: ClientAddress,
    user_agent: UserAgent,
) -> UserOut:
    if not settings.registration_open:
        raise Forbidden("registration is closed")
    try:
        # What needs no database and no hash first: an invalid sign-up costs nothing, and
        # counts against nothing.
        account = new_user(username=new.username, email=new.email, password=new.password)
    except (InvalidIdentifier, WeakPassword) as exc:
        raise Unprocessable(str(exc)) from None
    try:
        await throttle.registration(ip, db=db)
    except ThrottleUnavailable:
        raise ServiceUnavailable(
            "sign-up is unavailable; try again shortly",
            headers={"Retry-After": str(settings.retry_after)},
        ) from None
    except Throttled as throttled:
        raise TooManyRequests(
            "too many sign-ups from this address",
            headers={"Retry-After": str(throttled.retry_after)},
        ) from None
    try:
        user = await register(db, passwords, account)
    except HashingBusy as busy:
        raise ServiceUnavailable(
            "sign-up is busy; try again shortly", headers={"Retry-After": str(busy.retry_after)}
        ) from None
    except UserExists:
        raise Conflict("the username or email is already registered") from None
    audit.record(db, audit.USER_REGISTERED, user_id=user.id, ip=ip, user_agent=user_agent)
    response.headers["Location"] = "/users/me"
    return UserOut.model_validate(user, from_attributes=True)


@router.get(
    "/users/me",
    response_model=UserOut,
    summary="The caller",
    responses=problems({403: NO_USER_403}),
)
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)
