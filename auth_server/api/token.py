"""POST /token (RFC 6749 §3.2): client authentication, then the grant's handler."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from auth_server.api.deps import ClientAddress, ContextDep, DbSession
from auth_server.api.forms import read_oauth_form
from auth_server.api.oauth_errors import NO_STORE
from auth_server.oauth.clients import authenticate_client
from auth_server.oauth.errors import (
    InvalidRequest,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from auth_server.oauth.grants import GRANTS, TokenRequest
from auth_server.users.throttle import ThrottleUnavailable
from shared.metrics import counter

router = APIRouter(tags=["oauth"])

TOKEN_FORM_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": sorted(GRANTS)},
                        "username": {"type": "string"},
                        "password": {"type": "string", "format": "password"},
                        "refresh_token": {"type": "string"},
                        "scope": {"type": "string"},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string", "format": "password"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/token", summary="Issue tokens (OAuth 2.0 token endpoint)", openapi_extra=TOKEN_FORM_DOC
)
async def token(
    request: Request, ctx: ContextDep, db: DbSession, ip: ClientAddress
) -> JSONResponse:
    params = await read_oauth_form(request, ctx.settings.max_form_field_length)
    grant_type = params.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    handler = GRANTS.get(grant_type)
    if handler is None:
        raise UnsupportedGrantType("the grant type is not supported")
    client = await authenticate_client(
        db, ctx.passwords, authorization=request.headers.get("authorization"), params=params
    )
    if grant_type not in client.grant_types.split():
        raise UnauthorizedClient("the client may not use this grant type")
    token_request = TokenRequest(
        params=params, client=client, ip=ip, user_agent=request.headers.get("user-agent")
    )
    try:
        body = await handler(ctx, db, token_request)
    except ThrottleUnavailable:
        raise TemporarilyUnavailable() from None
    counter("tokens_issued", "Access tokens issued, by grant", ("grant",)).labels(
        grant=grant_type
    ).inc()
    return JSONResponse(body, headers=NO_STORE)
