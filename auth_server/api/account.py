"""POST /users/me/password: change the password; every other session ends."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from auth_server import audit
from auth_server.api.deps import (
    ClientAddress,
    CurrentClaims,
    CurrentUser,
    DbSession,
    Passwords,
    Sessions,
    Settings,
    Throttle,
    UserAgent,
)
from auth_server.api.openapi import PASSWORD_SCHEMA
from auth_server.users.passwords import HashingBusy
from auth_server.users.service import (
    PasswordChangedMeanwhile,
    WeakPassword,
    WrongPassword,
    change_password,
)
from auth_server.users.throttle import Throttled, ThrottleUnavailable
from shared.service.openapi import problems, too_many_requests
from shared.service.problem import (
    Conflict,
    Forbidden,
    ServiceUnavailable,
    TooManyRequests,
    Unprocessable,
)

router = APIRouter(tags=["users"])


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=4096)
    new_password: str = Field(min_length=1, max_length=4096, json_schema_extra=PASSWORD_SCHEMA)


@router.post(
    "/users/me/password",
    status_code=204,
    summary="Change my password",
    responses={
        **problems(
            {
                403: "The current password is wrong (counted as a failed login); or "
                "the token has no user (client credentials).",
                409: "The password was changed meanwhile (by another request); try again.",
                422: "The new password is weak (checked first: nothing is counted).",
            }
        ),
        **too_many_requests("Too many failed logins of this account or from this address."),
    },
)
async def change_my_password(
    change: PasswordChange,
    user: CurrentUser,
    claims: CurrentClaims,
    db: DbSession,
    passwords: Passwords,
    sessions: Sessions,
    throttle: Throttle,
    settings: Settings,
    ip: ClientAddress,
    user_agent: UserAgent,
) -> Response:
    # A wrong current password is a failed login of this account: the same limits (counted
    # before the check), 429 with Retry-After, and an audit record. No hash runs inside the
    # request's transaction (users/service.py).
    try:
        await change_password(
            db,
            passwords,
            throttle,
            user,
            current_password=change.current_password,
            new_password=change.new_password,
            ip=ip,
        )
    except WeakPassword as exc:
        raise Unprocessable(str(exc)) from None
    except WrongPassword as exc:
        audit.record(
            db,
            audit.LOGIN_FAILED,
            user_id=user.id,
            session_id=claims.sid,
            ip=ip,
            user_agent=user_agent,
            detail={"via": "password_change"},
        )
        raise Forbidden(str(exc)) from None
    except PasswordChangedMeanwhile as exc:
        raise Conflict(str(exc)) from None
    except HashingBusy as busy:
        raise ServiceUnavailable(
            "password changes are busy; try again shortly",
            headers={"Retry-After": str(busy.retry_after)},
        ) from None
    except ThrottleUnavailable:
        raise ServiceUnavailable(
            "password changes are unavailable; try again shortly",
            headers={"Retry-After": str(settings.retry_after)},
        ) from None
    except Throttled as throttled:
        if throttled.report:
            audit.record(
                db,
                audit.LOGIN_THROTTLED,
                user_id=user.id,
                session_id=claims.sid,
                ip=ip,
                user_agent=user_agent,
                detail={"via": "password_change", "refused_in_window": throttled.refused_so_far},
            )
        raise TooManyRequests(
            "too many attempts; try again later",
            headers={"Retry-After": str(throttled.retry_after)},
        ) from None
    audit.record(
        db,
        audit.PASSWORD_CHANGED,
        user_id=user.id,
        session_id=claims.sid,
        ip=ip,
        user_agent=user_agent,
    )
    # Every other session ends, each by its `sid`: the caller's own session stays usable.
    await sessions.end_user_sessions(
        db,
        user.id,
        keep=claims.sid,
        reason="password_changed",
        audit_type=audit.LOGOUT,
        ip=ip,
        user_agent=user_agent,
    )
    return Response(status_code=204)
