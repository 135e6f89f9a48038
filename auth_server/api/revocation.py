"""POST /revoke (RFC 7009), POST /introspect (RFC 7662), GET /revocations (the feed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from auth_server.api.deps import ClientAddress, ContextDep, DbSession
from auth_server.api.forms import read_oauth_form
from auth_server.api.oauth_errors import NO_STORE
from auth_server.oauth.clients import authenticate_client
from auth_server.oauth.errors import InvalidClient, InvalidRequest
from auth_server.persistence.models import LoginSession, RefreshToken
from auth_server.sessions import revocation
from auth_server.sessions.service import (
    MAX_REFRESH_TOKEN_LENGTH,
    hash_refresh_token,
    is_live,
    revoke_access_token,
    revoke_refresh_token,
    token_is_revoked,
)
from shared.db import utcnow
from shared.errors import TokenError
from shared.problem import ProblemError

router = APIRouter(tags=["oauth"])

FORM_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["token"],
                    "properties": {
                        "token": {"type": "string"},
                        "token_type_hint": {
                            "type": "string",
                            "enum": ["access_token", "refresh_token"],
                        },
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string", "format": "password"},
                    },
                }
            }
        },
    }
}


@router.post("/revoke", summary="Revoke a token (RFC 7009)", openapi_extra=FORM_DOC)
async def revoke(
    request: Request, ctx: ContextDep, db: DbSession, ip: ClientAddress
) -> JSONResponse:
    params = await read_oauth_form(request, ctx.settings.max_form_field_length)
    client = await authenticate_client(
        db, ctx.passwords, authorization=request.headers.get("authorization"), params=params
    )
    token = params.get("token")
    if not token:
        raise InvalidRequest("token is required")
    user_agent = request.headers.get("user-agent")
    # RFC 7009 §2.1: the hint is only a hint; both kinds are tried.
    hint = params.get("token_type_hint")
    kinds = (
        ["access_token", "refresh_token"]
        if hint == "access_token"
        else ["refresh_token", "access_token"]
    )
    for kind in kinds:
        if kind == "refresh_token":
            if await revoke_refresh_token(ctx, db, token, client.id, ip=ip, user_agent=user_agent):
                break
        else:
            try:
                claims = await ctx.verifier.verify_expired_ok(token)
            except TokenError:
                continue
            # RFC 7009 §2.1: only the client the token was issued to may revoke it; for anyone
            # else the request is answered like an unknown token (200) and nothing changes.
            if claims.client_id == client.id:
                await revoke_access_token(
                    ctx,
                    db,
                    jti=claims.jti,
                    sub=claims.sub,
                    sid=claims.sid,
                    client_id=client.id,
                    exp=claims.exp,
                    ip=ip,
                    user_agent=user_agent,
                )
            break
    # RFC 7009 §2.2: unknown or already invalid tokens are not an error.
    return JSONResponse({}, headers=NO_STORE)


async def _introspect_refresh(db: DbSession, token: str, issuer: str) -> dict[str, Any] | None:
    if len(token) > MAX_REFRESH_TOKEN_LENGTH:
        return None
    from sqlalchemy import select

    row = await db.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(token))
    )
    if row is None:
        return None
    session = await db.get(LoginSession, row.session_id)
    if session is None or row.used_at is not None or not is_live(session, utcnow()):
        return {"active": False}
    return {
        "active": True,
        "token_type": "refresh_token",
        "scope": row.scope,
        "client_id": session.client_id,
        "sub": session.user_id,
        "sid": session.id,
        "exp": int(session.expires_at.timestamp()),
        "iat": int(row.created_at.timestamp()),
        "iss": issuer,
    }


@router.post("/introspect", summary="Introspect a token (RFC 7662)", openapi_extra=FORM_DOC)
async def introspect(request: Request, ctx: ContextDep, db: DbSession) -> JSONResponse:
    params = await read_oauth_form(request, ctx.settings.max_form_field_length)
    authorization = request.headers.get("authorization")
    client = await authenticate_client(
        db, ctx.passwords, authorization=authorization, params=params
    )
    if not client.is_confidential:
        # RFC 7662 §2.1: the endpoint is for authorized (here: confidential) clients only.
        raise InvalidClient(
            "introspection is for confidential clients", basic=authorization is not None
        )
    token = params.get("token")
    if not token:
        raise InvalidRequest("token is required")
    inactive = JSONResponse({"active": False}, headers=NO_STORE)
    if params.get("token_type_hint") != "access_token":
        refresh = await _introspect_refresh(db, token, ctx.settings.issuer_base)
        if refresh is not None:
            return JSONResponse(refresh, headers=NO_STORE)
    try:
        claims = await ctx.verifier.verify(token)
    except TokenError:
        if params.get("token_type_hint") == "access_token":
            refresh = await _introspect_refresh(db, token, ctx.settings.issuer_base)
            if refresh is not None:
                return JSONResponse(refresh, headers=NO_STORE)
        return inactive
    if await token_is_revoked(db, jti=claims.jti, sid=claims.sid, sub=claims.sub, iat=claims.iat):
        return inactive
    body: dict[str, Any] = {
        "active": True,
        "token_type": "Bearer",
        "scope": claims.scope,
        "client_id": claims.client_id,
        "sub": claims.sub,
        "aud": claims.aud,
        "iss": claims.iss,
        "exp": claims.exp,
        "iat": claims.iat,
        "jti": claims.jti,
    }
    if claims.sid:
        body["sid"] = claims.sid
    return JSONResponse(body, headers=NO_STORE)


@router.get("/revocations", summary="The revocation feed, read by resource servers")
async def revocations(
    ctx: ContextDep, db: DbSession, since: str | None = Query(None, max_length=32)
) -> JSONResponse:
    try:
        cursor = revocation.parse_cursor(since)
    except revocation.BadCursor as exc:
        raise ProblemError(str(exc), status=400) from None
    page = await revocation.read_feed(
        db, cursor, ctx.settings.revocation_feed_page_size, ctx.settings.revocation_feed_settle
    )
    return JSONResponse(page, headers={"Cache-Control": "no-store"})
