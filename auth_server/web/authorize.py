"""GET and POST /authorize (RFC 6749 §4.1.1, OIDC Core §3.1.2.1: both methods, the same
parameters in the query or the form body)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.responses import Response

from auth_server.api.deps import auth_state
from auth_server.oauth.authorize import (
    AuthorizationError,
    AuthorizationRequest,
    UntrustedRequest,
    check_client_and_redirect,
    parse_authorization_request,
    single_params,
)
from auth_server.web.flow import current_browser_session, error_redirect, proceed
from auth_server.web.pages import pages_of
from shared.service.db import transaction

router = APIRouter(include_in_schema=False)

MAX_QUERY = 16_384


async def _parameters(request: Request) -> list[tuple[str, str]] | None:
    """The request's parameters, or None when they can't be read (not UTF-8, too many)."""
    try:
        if request.method == "POST":
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/x-www-form-urlencoded":
                return None
            text = (await request.body()).decode("utf-8")
        else:
            text = request.url.query
        if len(text) > MAX_QUERY:
            return None
        pairs = parse_qsl(
            text, keep_blank_values=False, max_num_fields=50, encoding="utf-8", errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        return None
    if any("\x00" in name or "\x00" in value for name, value in pairs):
        return None
    return pairs


@router.get("/authorize")
@router.post("/authorize")
async def authorize(request: Request) -> Response:
    state = auth_state(request)
    pages = pages_of(request)
    post = request.method == "POST"
    pairs = await _parameters(request)
    if pairs is None:
        return pages.error(
            request,
            400,
            "This sign-in link is broken",
            "The link you followed can't be read. Go back to the app and start again.",
        )
    params, repeated = single_params(pairs)
    async with transaction(state.session_maker) as db:
        client = await state.clients.find(db, params.get("client_id", ""))
        try:
            redirect_uri = check_client_and_redirect(client, params, repeated)
        except UntrustedRequest as refused:
            # RFC 6749 §4.1.2.1: never redirect to an unverified URI.
            return pages.error(request, 400, refused.title, refused.message)
        assert client is not None
        try:
            authorization = parse_authorization_request(client, redirect_uri, params, repeated)
        except AuthorizationError as refused:
            echo = AuthorizationRequest(
                client_id=client.id,
                redirect_uri=redirect_uri,
                scope="",
                state=params.get("state") if len(params.get("state", "")) <= 2048 else None,
                code_challenge="",
            )
            return error_redirect(state, echo, refused.error, refused.description, post=post)
        key, new_key = pages.csrf.ensure_key(request)
        browser = await current_browser_session(state, db, request)
        response = await proceed(
            state, db, authorization, client, browser, browser_key=key, post=post
        )
    if new_key:
        pages.csrf.set_key(response, key, path=pages.base or "/")
    response.headers["Cache-Control"] = "no-store"
    return response
