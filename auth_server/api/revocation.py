"""POST /revoke (RFC 7009), POST /introspect (RFC 7662), GET /revocations (the feed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from auth_server import revocations
from auth_server.api.deps import (
    ClientAddress,
    Clients,
    DbSession,
    Introspection,
    Revocation,
    Settings,
    UserAgent,
)
from auth_server.api.forms import read_oauth_form
from auth_server.api.oauth_errors import NO_STORE
from auth_server.api.openapi import (
    FEED_RESPONSES,
    INTROSPECT_FORM,
    NO_STORE_HEADERS,
    PAGE_COOKIE,
    REVOKE_FORM,
    IntrospectionResponse,
    Revoked,
    oauth_error_responses,
)
from auth_server.api.page_cookie import check_origin, clear_refresh_cookie, read_refresh_cookie
from auth_server.oauth.errors import InvalidClient, InvalidRequest
from auth_server.oauth.scopes import FEED_SCOPE
from shared.service.problem import ProblemError

router = APIRouter(tags=["oauth"])


@router.post(
    "/revoke",
    summary="Revoke a token (RFC 7009)",
    openapi_extra=REVOKE_FORM,
    responses={
        200: {"model": Revoked, "headers": {**NO_STORE_HEADERS, "Set-Cookie": PAGE_COOKIE}},
        **oauth_error_responses(throttled=True),
    },
)
async def revoke(
    request: Request,
    db: DbSession,
    settings: Settings,
    clients: Clients,
    revocation: Revocation,
    ip: ClientAddress,
    user_agent: UserAgent,
) -> JSONResponse:
    params = await read_oauth_form(request, settings.max_form_field_length)
    client = await clients.authenticate(
        db, authorization=request.headers.get("authorization"), params=params
    )
    token = params.get("token")
    if client.refresh_in_cookie:
        # The web page logs out with its cookie: the refresh token it never sees.
        check_origin(request, settings)
        token = token or read_refresh_cookie(request)
    if not token:
        raise InvalidRequest("token is required")
    await revocation.revoke(
        db,
        client=client,
        token=token,
        hint=params.get("token_type_hint"),
        ip=ip,
        user_agent=user_agent,
    )
    # RFC 7009 §2.2: unknown or already invalid tokens are not an error.
    response = JSONResponse({}, headers=NO_STORE)
    if client.refresh_in_cookie and "token" not in params:
        clear_refresh_cookie(response, settings)
    return response


@router.post(
    "/introspect",
    summary="Introspect a token (RFC 7662)",
    openapi_extra=INTROSPECT_FORM,
    responses={
        200: {"model": IntrospectionResponse, "headers": NO_STORE_HEADERS},
        **oauth_error_responses(),
    },
)
async def introspect(
    request: Request,
    db: DbSession,
    settings: Settings,
    clients: Clients,
    introspection: Introspection,
) -> JSONResponse:
    params = await read_oauth_form(request, settings.max_form_field_length)
    authorization = request.headers.get("authorization")
    client = await clients.authenticate(db, authorization=authorization, params=params)
    if not client.is_confidential:
        # RFC 7662 §2.1: the endpoint is for authorized (here: confidential) clients only.
        raise InvalidClient(
            "introspection is for confidential clients", basic=authorization is not None
        )
    token = params.get("token")
    if not token:
        raise InvalidRequest("token is required")
    body: dict[str, Any] = await introspection.introspect(db, token, params.get("token_type_hint"))
    return JSONResponse(body, headers=NO_STORE)


@router.get(
    "/revocations",
    summary="The revocation feed, read by resource servers",
    responses=FEED_RESPONSES,
)
async def revocation_feed(
    request: Request,
    db: DbSession,
    settings: Settings,
    clients: Clients,
    since: str | None = Query(
        None,
        max_length=32,
        description="The `cursor` of the previous page; absent or empty: from the start.",
        json_schema_extra={"pattern": "^[0-9]{0,18}$", "maxLength": 18},
    ),
) -> JSONResponse:
    """Open in development; in production (AUTH_REVOCATION_FEED_AUTH=client) only for a
    confidential client holding `revocations:read`, with HTTP Basic: the feed names sessions,
    users and tokens (never a secret), which outsiders needn't learn."""
    if settings.feed_requires_client:
        authorization = request.headers.get("authorization")
        if not authorization:
            raise InvalidClient("the revocation feed needs client authentication", basic=True)
        client = await clients.authenticate(db, authorization=authorization, params={})
        if not client.is_confidential or FEED_SCOPE not in client.scopes.split():
            raise InvalidClient("this client may not read the revocation feed", basic=True)
    try:
        cursor = revocations.parse_cursor(since)
    except revocations.BadCursor as exc:
        raise ProblemError(str(exc), status=400) from None
    page = await revocations.read_feed(
        db, cursor, settings.revocation_feed_page_size, settings.revocation_feed_settle
    )
    return JSONResponse(page.as_json(), headers={"Cache-Control": "no-store"})
