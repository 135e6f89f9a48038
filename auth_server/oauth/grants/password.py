"""The resource owner password credentials grant (RFC 6749 §4.3).

A wrong password and an unknown user give the same error, after the same Argon2 work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.oauth.errors import InvalidGrant, InvalidRequest, SlowDown
from auth_server.oauth.grants.base import TokenRequest
from auth_server.oauth.scopes import grant_scope, parse_scope, user_scopes
from auth_server.oauth.tokens import token_response
from auth_server.sessions import audit
from auth_server.sessions.service import start_session
from auth_server.users.normalize import canonical_username
from auth_server.users.service import find_for_login

if TYPE_CHECKING:
    from auth_server.context import AuthContext

BAD_CREDENTIALS = "the username or password is wrong"


async def password_grant(ctx: AuthContext, db: AsyncSession, req: TokenRequest) -> dict[str, Any]:
    login, password = req.params.get("username"), req.params.get("password")
    if not login or password is None:
        raise InvalidRequest("username and password are required")
    throttle_name = canonical_username(login)
    ip = req.ip or "unknown"
    wait = await ctx.throttle.login_blocked(throttle_name, ip)
    if wait is not None:
        audit.record(
            db, audit.LOGIN_THROTTLED, client_id=req.client.id, ip=req.ip, user_agent=req.user_agent
        )
        await db.commit()
        raise SlowDown(wait)
    requested = parse_scope(req.params.get("scope"))

    user = await find_for_login(db, login)
    ok, new_hash = await ctx.passwords.verify(password, user.password_hash if user else None)
    if user is None or not ok:
        await ctx.throttle.record_failure(throttle_name, ip)
        audit.record(
            db,
            audit.LOGIN_FAILED,
            user_id=user.id if user else None,
            client_id=req.client.id,
            ip=req.ip,
            user_agent=req.user_agent,
        )
        await db.commit()
        raise InvalidGrant(BAD_CREDENTIALS)
    await ctx.throttle.clear(throttle_name, ip)
    if new_hash is not None:  # the hashing parameters changed: upgrade the stored hash
        user.password_hash = new_hash

    allowed = frozenset(req.client.scopes.split()) & user_scopes(user.is_admin)
    scope = grant_scope(requested, allowed)
    refresh_token = sid = None
    if "refresh_token" in req.client.grant_types.split():
        started = await start_session(
            db,
            user_id=user.id,
            client_id=req.client.id,
            scope=scope,
            refresh_ttl=ctx.settings.refresh_token_ttl,
            ip=req.ip,
            user_agent=req.user_agent,
        )
        refresh_token, sid = started.refresh_token, started.session_id
    access = await ctx.tokens.issue_access_token(
        sub=user.id, client_id=req.client.id, scope=scope, sid=sid
    )
    audit.record(
        db,
        audit.LOGIN,
        user_id=user.id,
        session_id=sid,
        client_id=req.client.id,
        ip=req.ip,
        user_agent=req.user_agent,
    )
    await db.commit()
    return token_response(access, refresh_token)
