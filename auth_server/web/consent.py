"""The consent page (OIDC Core §3.1.2.4): for an app that is not first-party, it names the app
and each scope in words; the answer is remembered per user, client and scopes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from auth_server import audit
from auth_server.api.deps import auth_state, request_client_address
from auth_server.oauth.consent import remember_consent
from auth_server.oauth.flows import request_of
from auth_server.web.csrf import CsrfFailed
from auth_server.web.flow import Step, current_browser_session, error_redirect, proceed
from auth_server.web.forms import read_form
from auth_server.web.login import csrf_refused, expired_flow
from auth_server.web.pages import pages_of
from shared.service.db import transaction

router = APIRouter(include_in_schema=False)

SCOPE_WORDS = {
    "openid": "Know who you are (your account's identifier)",
    "profile": "See your username",
    "email": "See your email address",
    "offline_access": "Stay signed in when you're not using it",
    "account": "Manage your account: see your sessions, sign you out, change your password",
    "notes:read": "Read your notes",
    "notes:write": "Create, change and delete your notes",
}


def scope_words(scope: str) -> list[str]:
    return [SCOPE_WORDS.get(name, f"Use “{name}”") for name in scope.split()]


@router.get("/consent")
async def consent_page(request: Request) -> Response:
    state = auth_state(request)
    async with transaction(state.session_maker) as db:
        key = pages_of(request).csrf.browser_key(request) or ""
        flow = await state.flows.get(db, request.query_params.get("flow"), key)
        authorization = request_of(flow) if flow is not None else None
        if flow is None or authorization is None:
            return expired_flow(state, request)
        browser = await current_browser_session(state, db, request)
        if browser is None:
            return expired_flow(state, request)
        return pages_of(request).render(
            request,
            "consent.html",
            purpose="consent",
            flow=flow.id,
            form_action=[authorization.redirect_uri],
            client_id=authorization.client_id,
            scopes=scope_words(authorization.scope),
        )


@router.post("/consent")
async def consent_submit(request: Request) -> Response:
    state = auth_state(request)
    form = await read_form(request)
    if form is None:
        return csrf_refused(state, request)
    flow_id = form.get("flow") or None
    try:
        key = pages_of(request).csrf.check(request, form.get("csrf"), "consent", flow_id)
    except CsrfFailed:
        return csrf_refused(state, request)
    async with transaction(state.session_maker) as db:
        flow = await state.flows.get(db, flow_id, key)
        authorization = request_of(flow) if flow is not None else None
        browser = await current_browser_session(state, db, request)
        if flow is None or authorization is None or browser is None:
            return expired_flow(state, request)
        client = await state.clients.find(db, authorization.client_id)
        if client is None:
            return expired_flow(state, request)
        if form.get("decision") != "allow":
            await state.flows.finish(db, flow.id)
            return error_redirect(
                state, authorization, "access_denied", "the person declined", post=True
            )
        await remember_consent(db, browser.user_id, client.id, authorization.scope)
        audit.record(
            db,
            audit.CONSENT_GRANTED,
            user_id=browser.user_id,
            session_id=browser.id,
            client_id=client.id,
            ip=request_client_address(request, state.settings),
            user_agent=request.headers.get("user-agent"),
            detail={"scope": authorization.scope},
        )
        return await proceed(
            state,
            db,
            authorization,
            client,
            browser,
            browser_key=key,
            flow_id=flow.id,
            post=True,
            step=Step(consented=True),
        )
