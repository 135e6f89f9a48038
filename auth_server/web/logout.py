"""The end-session endpoint (OIDC RP-Initiated Logout 1.0), GET and POST at /logout.

- With a valid (possibly expired) `id_token_hint`: the browser session behind it ends, with
  every app signed in through it, and the person goes to `post_logout_redirect_uri` only when it
  is registered for the hint's client (exact match), else sees the logged-out page.
- Without one: nothing ends before the person confirms (a link on another site can't sign
  anyone out), and the redirect goes only to a URI registered for the `client_id` given.
- A redirect URI that isn't registered is never followed: an error page says so (the open
  redirects of zitadel PR #8480 and node-oidc-provider#464).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from auth_server import audit
from auth_server.api.deps import auth_state, request_client_address
from auth_server.oidc.id_token import InvalidHint, read_id_token_hint
from auth_server.persistence.models import LoginSession
from auth_server.state import AuthState
from auth_server.web.cookies import clear_session_cookie
from auth_server.web.csrf import CsrfFailed
from auth_server.web.flow import current_browser_session
from auth_server.web.forms import read_form
from auth_server.web.login import csrf_refused
from auth_server.web.pages import pages_of
from shared.service.db import transaction

router = APIRouter(include_in_schema=False)


def _with_state(uri: str, state: str | None) -> str:
    if state is None:
        return uri
    parts = urlsplit(uri)
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("state", state)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _refused(state: AuthState, request: Request, message: str) -> Response:
    return pages_of(request).error(request, 400, "This sign-out link isn't valid", message)


def _done(
    state: AuthState,
    request: Request,
    target: str | None,
    relay: str | None,
    *,
    post: bool,
    clear_cookie: bool = True,
) -> Response:
    response: Response
    if target is not None:
        response = RedirectResponse(_with_state(target, relay), status_code=303 if post else 302)
    else:
        response = pages_of(request).render(request, "logged_out.html")
    if clear_cookie:
        clear_session_cookie(response, state.settings.issuer_base)
    response.headers["Cache-Control"] = "no-store"
    return response


async def _end_current(
    state: AuthState, db: AsyncSession, request: Request, user: str | None
) -> None:
    """End this browser's session (if it is `user`'s, when a user is named)."""
    current = await current_browser_session(state, db, request)
    if current is not None and (user is None or current.user_id == user):
        await state.sessions.end_browser(
            db,
            current.id,
            reason="logout",
            ip=request_client_address(request, state.settings),
            user_agent=request.headers.get("user-agent"),
        )


@router.get("/logout")
@router.post("/logout")
async def end_session(request: Request) -> Response:
    state = auth_state(request)
    post = request.method == "POST"
    if post:
        form = await read_form(request)
        if form is None:
            return _refused(state, request, "The sign-out request can't be read.")
        params = form
    else:
        params = {k: v for k, v in request.query_params.items() if len(v) <= 8192}
    hint = params.get("id_token_hint") or None
    client_id = params.get("client_id") or None
    target = params.get("post_logout_redirect_uri") or None
    relay = params.get("state") or None
    if relay is not None and len(relay) > 2048:
        return _refused(state, request, "The sign-out link's state is too long.")
    ip = request_client_address(request, state.settings)
    user_agent = request.headers.get("user-agent")
    async with transaction(state.session_maker) as db:
        if hint is not None:
            try:
                claims = await read_id_token_hint(state.keys, state.settings.issuer_base, hint)
            except InvalidHint:
                return _refused(
                    state,
                    request,
                    "The app sent a sign-out request this service didn't issue. Nothing was "
                    "changed; you are still signed in.",
                )
            if client_id is not None and client_id != claims.client_id:
                return _refused(state, request, "The sign-out request names two different apps.")
            client = await state.clients.find(db, claims.client_id)
            if client is None:
                return _refused(state, request, "The app that sent you here isn't known here.")
            if target is not None and target not in client.registered_post_logout_redirects():
                return _refused(
                    state,
                    request,
                    "The app asked to send you to an address it never registered, so you were "
                    "not sent there. Nothing was changed.",
                )
            # The browser session the hint was issued under ends, with every app signed in
            # through it. A newer sign-in in this browser (the hint's session already over) is
            # left alone: a late logout of one tab must not end the sign-in of another.
            ended = None
            if claims.sid is not None:
                browser = await state.sessions.browser_of(db, claims.sid)
                if browser is not None and browser.user_id == claims.sub:
                    await state.sessions.end_browser(
                        db, browser.id, reason="logout", ip=ip, user_agent=user_agent
                    )
                    ended = browser.id
                else:
                    session = await db.get(LoginSession, claims.sid)
                    if session is not None and session.user_id == claims.sub:
                        await state.sessions.end_session(
                            db,
                            claims.sid,
                            reason="logout",
                            audit_type=audit.LOGOUT,
                            ip=ip,
                            user_agent=user_agent,
                        )
            current = await current_browser_session(state, db, request)
            keep_cookie = current is not None and current.id != ended
            return _done(state, request, target, relay, post=post, clear_cookie=not keep_cookie)

        # No hint: the person confirms first, and only a URI registered for client_id is used.
        if target is not None:
            client = await state.clients.find(db, client_id or "")
            if client is None or target not in client.registered_post_logout_redirects():
                return _refused(
                    state,
                    request,
                    "The sign-out link would send you to an address that isn't registered for "
                    "its app, so you were not sent there. Nothing was changed.",
                )
        if post and params.get("confirm") == "yes":
            try:
                pages_of(request).csrf.check(request, params.get("csrf"), "logout", None)
            except CsrfFailed:
                return csrf_refused(state, request)
            await _end_current(state, db, request, None)
            return _done(state, request, target, relay, post=True)
        browser = await current_browser_session(state, db, request)
        return pages_of(request).render(
            request,
            "logout.html",
            purpose="logout",
            form_action=[target] if target else [],
            signed_in=browser is not None,
            client_id=client_id,
            post_logout_redirect_uri=target,
            relay=relay,
        )
