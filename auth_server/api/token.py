"""POST /token (RFC 6749 §3.2): client authentication, then the grant's handler."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from auth_server.api.deps import ANSWERS, auth_state, request_client_address
from auth_server.api.forms import read_oauth_form
from auth_server.api.oauth_errors import NO_STORE, oauth_error_response
from auth_server.api.openapi import (
    NO_STORE_HEADERS,
    PAGE_COOKIE,
    TOKEN_FORM,
    TokenResponse,
    oauth_error_responses,
)
from auth_server.api.page_cookie import (
    check_origin,
    clear_refresh_cookie,
    read_refresh_cookie,
    set_refresh_cookie,
)
from auth_server.oauth.errors import (
    InvalidGrant,
    InvalidRequest,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from auth_server.oauth.grants import TokenRequest
from auth_server.state import AuthState
from auth_server.users.throttle import ThrottleUnavailable
from shared.service.db import transaction

router = APIRouter(tags=["oauth"])


@router.post(
    "/token",
    summary="Issue tokens (OAuth 2.0 token endpoint)",
    openapi_extra=TOKEN_FORM,
    responses={
        200: {"model": TokenResponse, "headers": {**NO_STORE_HEADERS, "Set-Cookie": PAGE_COOKIE}},
        **oauth_error_responses(throttled=True, page_cookie=True),
    },
)
async def token(request: Request) -> JSONResponse:
    # The busiest route takes no FastAPI dependency: each one is solved again on every request
    # (about 10 us each on this machine, and a `yield` one more). Its collaborators come from
    # the app's state, and it opens its unit of work itself, as `DbSession` would: committed
    # before the response is sent, also when the answer is a deliberate error
    # (`make profile TARGET=refresh`).
    state = auth_state(request)
    async with transaction(state.session_maker, commit_on=ANSWERS) as db:
        return await _token(request, state, db)


async def _token(request: Request, state: AuthState, db: AsyncSession) -> JSONResponse:
    settings = state.settings
    params = await read_oauth_form(request, settings.max_form_field_length)
    grant_type = params.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    grant = state.grants.get(grant_type)
    if grant is None:
        raise UnsupportedGrantType("the grant type is not supported")
    client = await state.clients.authenticate(
        db, authorization=request.headers.get("authorization"), params=params
    )
    if grant_type not in client.grant_types.split():
        raise UnauthorizedClient("the client may not use this grant type")
    token_request = TokenRequest(
        params=params,
        client=client,
        ip=request_client_address(request, settings),
        user_agent=request.headers.get("user-agent"),
    )
    if client.refresh_in_cookie:
        return await _cookie_client_token(request, state, db, grant_type, token_request)
    return JSONResponse(await _issue(state, db, grant_type, token_request), headers=NO_STORE)


async def _issue(
    state: AuthState, db: AsyncSession, grant_type: str, token_request: TokenRequest
) -> dict[str, Any]:
    """The grant's answer (RFC 6749 §5.1), counted in the tokens-issued metric."""
    try:
        body = await state.grants[grant_type](db, token_request)
    except ThrottleUnavailable:
        raise TemporarilyUnavailable(state.settings.retry_after) from None
    state.metrics.tokens_issued.labels(grant=grant_type).inc()
    return body


async def _cookie_client_token(
    request: Request,
    state: AuthState,
    db: AsyncSession,
    grant_type: str,
    token_request: TokenRequest,
) -> JSONResponse:
    """The web page's client: the refresh token travels only in its HttpOnly cookie."""
    settings = state.settings
    check_origin(request, settings)
    if grant_type == "refresh_token":
        if "refresh_token" in token_request.params:
            raise InvalidRequest("this client's refresh token travels only in its cookie")
        cookie = read_refresh_cookie(request)
        if cookie is None:
            raise InvalidGrant("there is no session to refresh")
        params = {**token_request.params, "refresh_token": cookie}
        token_request = dataclasses.replace(token_request, params=params)
    try:
        body = dict(await _issue(state, db, grant_type, token_request))
    except InvalidGrant as exc:
        if grant_type != "refresh_token":
            raise
        refused = oauth_error_response(exc)
        clear_refresh_cookie(refused, settings)  # the session is over: forget its cookie
        return refused
    refresh_token = body.pop("refresh_token", None)
    response = JSONResponse(body, headers=NO_STORE)
    if refresh_token is not None:
        set_refresh_cookie(response, settings, refresh_token)
    return response
