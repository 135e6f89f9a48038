"""Where an authorization request goes next: the one place that decides between the sign-in
page, the consent page, an error for the app, and the code (OIDC Core §3.1.2.3 to §3.1.2.6).

/authorize, the sign-in and sign-up POSTs, the one-time code's POST and the consent POST all end
here, so `prompt`, `max_age`, `acr_values` and consent are decided once. (The second factor is a
step of the sign-in itself, before there is a browser session: auth_server/web/login.py.)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from auth_server.oauth.authorize import AuthorizationRequest, authorization_response_uri
from auth_server.oauth.clients import ClientRecord
from auth_server.oauth.consent import has_consent
from auth_server.sessions.authentication import ACR_VALUES
from auth_server.sessions.service import BrowserSession
from auth_server.state import AuthState
from auth_server.web.cookies import read_session_cookie
from auth_server.web.pages import base_path


@dataclass(frozen=True, slots=True)
class Step:
    """What the person has just done in this flow: it satisfies `prompt=login`, `max_age` and
    `prompt=consent` once, so the flow never loops back to the same page."""

    fresh_login: bool = False
    consented: bool = False


def redirect(url: str, *, post: bool) -> RedirectResponse:
    # RFC 9700 §4.12: after a form POST, 303, so the browser never re-sends the form (and the
    # password in it) to the app.
    return RedirectResponse(url, status_code=303 if post else 302)


def error_redirect(
    state: AuthState, request: AuthorizationRequest, error: str, description: str, *, post: bool
) -> RedirectResponse:
    """An OAuth error for the app, at its verified redirect URI, with `state` and `iss`."""
    return redirect(
        authorization_response_uri(
            request.redirect_uri,
            state.settings.issuer_base,
            request.state,
            error=error,
            error_description=description,
        ),
        post=post,
    )


async def current_browser_session(
    state: AuthState, db: AsyncSession, request: Request
) -> BrowserSession | None:
    # A deleted user's sessions are deleted with it (ON DELETE CASCADE): no user check needed.
    return await state.sessions.find_browser(db, read_session_cookie(request))


def too_old(browser: BrowserSession, max_age: int | None, now: dt.datetime) -> bool:
    """OIDC Core §3.1.2.1: a sign-in older than max_age seconds must be done again."""
    if max_age is None:
        return False
    return (now - browser.authentication.auth_time).total_seconds() > max_age


def acr_met(browser: BrowserSession, acr_values: tuple[str, ...]) -> bool:
    """Whether the sign-in meets one of the requested `acr_values` (unknown values are ignored:
    OIDC Core §3.1.2.1 makes them voluntary). Issue 22 gives `mfa` a way to be met."""
    known = [value for value in acr_values if value in ACR_VALUES]
    if not known:
        return True
    strength = ACR_VALUES.index(browser.authentication.acr)
    return any(ACR_VALUES.index(value) <= strength for value in known)


async def proceed(
    state: AuthState,
    db: AsyncSession,
    request: AuthorizationRequest,
    client: ClientRecord,
    browser: BrowserSession | None,
    *,
    browser_key: str,
    flow_id: str | None = None,
    post: bool,
    step: Step = Step(),
) -> Response:
    """The next response for `request` (its client and redirect already verified)."""
    now = state.sessions.now()
    prompt = request.prompt
    login_due = browser is None or (
        not step.fresh_login
        and (
            "login" in prompt
            or "select_account" in prompt
            or too_old(browser, request.max_age, now)
            or not acr_met(browser, request.acr_values)
        )
    )
    if "create" in prompt and not step.fresh_login:
        flow_id = flow_id or await state.flows.start(db, browser_key=browser_key, request=request)
        return redirect(f"{base_path(state.settings.issuer_base)}/signup?flow={flow_id}", post=post)
    if login_due:
        if "none" in prompt:
            # OIDC Core §3.1.2.6: no page may be shown.
            if browser is not None and not acr_met(browser, request.acr_values):
                return error_redirect(
                    state,
                    request,
                    "interaction_required",
                    "a stronger sign-in is needed",
                    post=post,
                )
            return error_redirect(
                state, request, "login_required", "the person is not signed in", post=post
            )
        flow_id = flow_id or await state.flows.start(db, browser_key=browser_key, request=request)
        return redirect(f"{base_path(state.settings.issuer_base)}/login?flow={flow_id}", post=post)
    assert browser is not None
    # A third party gets only what the person allowed it (remembered per user, client and
    # scopes); `prompt=consent` asks again.
    if (
        not client.first_party
        and not step.consented
        and (
            "consent" in prompt
            or not await has_consent(db, browser.user_id, client.id, request.scope)
        )
    ):
        if "none" in prompt:
            return error_redirect(
                state,
                request,
                "consent_required",
                "the person has not allowed this app",
                post=post,
            )
        flow_id = flow_id or await state.flows.start(db, browser_key=browser_key, request=request)
        return redirect(
            f"{base_path(state.settings.issuer_base)}/consent?flow={flow_id}", post=post
        )
    if flow_id is not None:
        await state.flows.finish(db, flow_id)
    code = await state.codes.issue(db, request, browser)
    return redirect(
        authorization_response_uri(
            request.redirect_uri, state.settings.issuer_base, request.state, code=code
        ),
        post=post,
    )


__all__ = [
    "Step",
    "acr_met",
    "current_browser_session",
    "error_redirect",
    "proceed",
    "redirect",
    "too_old",
]
