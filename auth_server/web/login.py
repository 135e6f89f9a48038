"""The hosted sign-in and sign-up pages (/login, /signup): plain forms that POST.

Both end the same way: a browser session (its cookie), then the flow's next step (`proceed`):
the consent page, or the code for the app. Without a flow, the person signs in to the auth
server itself and sees who they are signed in as.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from auth_server import audit
from auth_server.api.deps import auth_state, request_client_address
from auth_server.factors.actor import Actor
from auth_server.factors.errors import FactorLocked, FactorThrottled, WrongCode
from auth_server.oauth.flows import request_of
from auth_server.persistence.models import LoginFlow, User
from auth_server.ratelimit import Ticket
from auth_server.sessions.authentication import (
    OTP,
    PWD,
    Authentication,
    authentication_for,
    password_authentication,
)
from auth_server.state import AuthState
from auth_server.users.login import Attempt, BadCredentials, LoginThrottled, PasswordChecked
from auth_server.users.passwords import HashingBusy
from auth_server.users.service import (
    InvalidIdentifier,
    UserExists,
    WeakPassword,
    new_user,
    register,
)
from auth_server.users.throttle import LoginAttempt, Throttled, ThrottleUnavailable
from auth_server.web.cookies import set_session_cookie
from auth_server.web.csrf import CsrfFailed
from auth_server.web.flow import Step, current_browser_session, proceed
from auth_server.web.forms import read_form
from auth_server.web.pages import pages_of
from shared.service.db import transaction

router = APIRouter(include_in_schema=False)


def _wait_words(seconds: int) -> str:
    if seconds < 60:
        return "in a minute" if seconds > 1 else "in a second"
    minutes = -(-seconds // 60)
    return f"in {minutes} minutes" if minutes < 60 else f"in about {round(minutes / 60)} hours"


def expired_flow(state: AuthState, request: Request) -> Response:
    return pages_of(request).error(
        request,
        400,
        "This sign-in has expired",
        "The sign-in you started has expired, or was started in another browser. Go back to "
        "the app and sign in again.",
    )


def csrf_refused(state: AuthState, request: Request) -> Response:
    return pages_of(request).error(
        request,
        403,
        "This form can't be accepted",
        "The form was sent without the token this page gave it, or from another site. Nothing "
        "was changed. Reload the page and try again.",
    )


def _client_name(flow: LoginFlow | None) -> str | None:
    authorization = request_of(flow) if flow is not None else None
    return authorization.client_id if authorization is not None else None


async def _flow(state: AuthState, db: AsyncSession, request: Request, flow_id: str | None) -> Any:
    """(flow or None, whether a flow id was given but is not this browser's live flow)."""
    if not flow_id:
        return None, False
    key = pages_of(request).csrf.browser_key(request) or ""
    flow = await state.flows.get(db, flow_id, key)
    return flow, flow is None


def _login_page(
    state: AuthState,
    request: Request,
    flow: LoginFlow | None,
    *,
    status: int = 200,
    username: str = "",
    error: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    authorization = request_of(flow) if flow is not None else None
    if not username and authorization is not None and authorization.login_hint:
        username = authorization.login_hint
    response = pages_of(request).render(
        request,
        "login.html",
        status=status,
        purpose="login",
        flow=flow.id if flow else None,
        form_action=[authorization.redirect_uri] if authorization else [],
        client_id=authorization.client_id if authorization else None,
        username=username,
        error=error,
    )
    response.headers.update(headers or {})
    return response


async def _signed_in(
    state: AuthState,
    db: AsyncSession,
    request: Request,
    user: User,
    authentication: Authentication,
    flow: LoginFlow | None,
    attempt: Attempt,
) -> Response:
    """The person proved who they are: their browser session, then the flow's next step."""
    current = await current_browser_session(state, db, request)
    if current is not None:
        # One browser, one sign-in: the one it replaces ends, with the apps signed in through it.
        await state.sessions.end_browser(
            db, current.id, reason="replaced", ip=attempt.ip, user_agent=attempt.user_agent
        )
    started = await state.sessions.start_browser(
        db,
        user_id=user.id,
        authentication=authentication,
        ip=attempt.ip,
        user_agent=attempt.user_agent,
    )
    audit.record(
        db,
        audit.BROWSER_LOGIN,
        user_id=user.id,
        session_id=started.session.id,
        ip=attempt.ip,
        user_agent=attempt.user_agent,
        detail={"amr": list(authentication.amr)},
    )
    authorization = request_of(flow) if flow is not None else None
    response: Response
    if flow is not None and authorization is not None:
        client = await state.clients.find(db, authorization.client_id)
        if client is None:
            return expired_flow(state, request)
        response = await proceed(
            state,
            db,
            authorization,
            client,
            started.session,
            browser_key=pages_of(request).csrf.browser_key(request) or "",
            flow_id=flow.id,
            post=True,
            step=Step(fresh_login=True),
        )
    else:
        if flow is not None:
            await state.flows.finish(db, flow.id)
        response = RedirectResponse(f"{pages_of(request).base}/login", status_code=303)
    set_session_cookie(
        response, state.settings.issuer_base, started.secret, state.settings.refresh_token_ttl
    )
    return response


async def _second_factor_step(
    state: AuthState,
    db: AsyncSession,
    request: Request,
    checked: PasswordChecked,
    flow: LoginFlow | None,
    attempt: Attempt,
) -> Response:
    """Remember in the flow that the password passed (and its throttle counts, forgiven once
    the code passes), and ask for a one-time code."""
    user_id = checked.user.id
    flow_id = flow.id if flow is not None else None
    if flow_id is None:
        key = pages_of(request).csrf.browser_key(request) or ""
        flow_id = await state.flows.start(db, browser_key=key, request=None)
    row = await db.get(LoginFlow, flow_id)
    assert row is not None
    row.user_id = user_id
    row.amr = PWD
    row.attempt = [[ticket.key, ticket.window] for ticket in checked.attempt.tickets]
    audit.record(
        db,
        audit.LOGIN_MFA_REQUIRED,
        user_id=user_id,
        ip=attempt.ip,
        user_agent=attempt.user_agent,
        detail={"via": "hosted"},
    )
    return RedirectResponse(f"{pages_of(request).base}/login/code?flow={flow_id}", status_code=303)


async def _code_page(
    state: AuthState,
    db: AsyncSession,
    request: Request,
    flow: LoginFlow,
    *,
    status: int = 200,
    error: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    assert flow.user_id is not None
    available = await state.factor_login.available(db, flow.user_id)
    authorization = request_of(flow)
    response = pages_of(request).render(
        request,
        "code.html",
        status=status,
        purpose="code",
        flow=flow.id,
        form_action=[authorization.redirect_uri] if authorization else [],
        error=error,
        codes=available.totp or available.recovery_codes > 0,
    )
    response.headers.update(headers or {})
    return response


async def _code_flow(
    state: AuthState, db: AsyncSession, request: Request, flow_id: str | None
) -> LoginFlow | None:
    """This browser's flow whose password step passed, or None."""
    flow, _ = await _flow(state, db, request, flow_id)
    if flow is None or flow.user_id is None or flow.amr != PWD:
        return None
    return flow  # type: ignore[no-any-return]


@router.get("/login/code")
async def code_page(request: Request) -> Response:
    state = auth_state(request)
    async with transaction(state.session_maker) as db:
        flow = await _code_flow(state, db, request, request.query_params.get("flow"))
        if flow is None:
            return expired_flow(state, request)
        return await _code_page(state, db, request, flow)


@router.post("/login/code")
async def code_submit(request: Request) -> Response:
    state = auth_state(request)
    form = await read_form(request)
    if form is None:
        return csrf_refused(state, request)
    flow_id = form.get("flow") or None
    try:
        pages_of(request).csrf.check(request, form.get("csrf"), "code", flow_id)
    except CsrfFailed:
        return csrf_refused(state, request)
    ip = request_client_address(request, state.settings)
    user_agent = request.headers.get("user-agent")
    code = form.get("code", "").strip()
    async with transaction(state.session_maker) as db:
        flow = await _code_flow(state, db, request, flow_id)
        if flow is None or flow.user_id is None:
            return expired_flow(state, request)
        user_id = flow.user_id
        if not code:
            return await _code_page(
                state, db, request, flow, status=400, error="Enter the code from your app."
            )
        try:
            await state.factor_login.verify_code(db, user_id, code, Actor(ip, user_agent))
        except WrongCode:
            return await _code_page(
                state,
                db,
                request,
                flow,
                status=400,
                error="That code is wrong or was used already. Enter a new one.",
            )
        except FactorLocked:
            return await _code_page(
                state,
                db,
                request,
                flow,
                status=403,
                error="This kind of code is locked after too many wrong ones. Use a recovery "
                "code or another factor.",
            )
        except FactorThrottled as throttled:
            return await _code_page(
                state,
                db,
                request,
                flow,
                status=429,
                error=f"Too many wrong codes. Try again {_wait_words(throttled.retry_after)}.",
                headers={"Retry-After": str(throttled.retry_after)},
            )
        except ThrottleUnavailable:
            return await _code_page(
                state,
                db,
                request,
                flow,
                status=503,
                error="Signing in is briefly unavailable. Try again in a few seconds.",
                headers={"Retry-After": str(state.settings.retry_after)},
            )
        user = await db.get(User, user_id)
        if user is None:
            return expired_flow(state, request)
        tickets = tuple(Ticket(str(key), str(window)) for key, window in flow.attempt or [])
        await state.login.factor_passed(db, LoginAttempt(tickets))
        flow.user_id = None
        flow.amr = None
        flow.attempt = None
        attempt = Attempt(ip, user_agent, via="hosted")
        return await _signed_in(
            state,
            db,
            request,
            user,
            authentication_for(state.sessions.now(), (PWD, OTP)),
            flow,
            attempt,
        )


@router.get("/")
async def home(request: Request) -> Response:
    return RedirectResponse(f"{pages_of(request).base}/login", status_code=302)


@router.get("/login")
async def login_page(request: Request) -> Response:
    state = auth_state(request)
    async with transaction(state.session_maker) as db:
        flow, lost = await _flow(state, db, request, request.query_params.get("flow"))
        if lost:
            return expired_flow(state, request)
        if flow is None:
            browser = await current_browser_session(state, db, request)
            if browser is not None:
                user = await db.get(User, browser.user_id)
                assert user is not None
                return pages_of(request).render(
                    request, "signed_in.html", purpose="logout", username=user.username
                )
        return _login_page(state, request, flow)


@router.post("/login")
async def login_submit(request: Request) -> Response:
    state = auth_state(request)
    form = await read_form(request)
    if form is None:
        return csrf_refused(state, request)
    flow_id = form.get("flow") or None
    try:
        pages_of(request).csrf.check(request, form.get("csrf"), "login", flow_id)
    except CsrfFailed:
        return csrf_refused(state, request)
    settings = state.settings
    attempt = Attempt(
        request_client_address(request, settings),
        request.headers.get("user-agent"),
        via="hosted",
    )
    username, password = form.get("username", "").strip(), form.get("password", "")
    async with transaction(state.session_maker) as db:
        flow, lost = await _flow(state, db, request, flow_id)
        if lost:
            return expired_flow(state, request)
        if not username or not password:
            return _login_page(
                state,
                request,
                flow,
                status=400,
                username=username,
                error="Enter your username or email, and your password.",
            )
        try:
            checked = await state.login.verify(db, username, password, attempt)
        except BadCredentials:
            # The same words for an unknown user as for a wrong password.
            return _login_page(
                state,
                request,
                flow,
                status=400,
                username=username,
                error="That username or password is wrong. Check them and try again.",
            )
        except LoginThrottled as throttled:
            return _login_page(
                state,
                request,
                flow,
                status=429,
                username=username,
                error=f"Too many failed attempts, so signing in as “{username}” is paused for "
                f"now. Try again {_wait_words(throttled.retry_after)}.",
                headers={"Retry-After": str(throttled.retry_after)},
            )
        except (HashingBusy, ThrottleUnavailable) as busy:
            retry = getattr(busy, "retry_after", settings.retry_after)
            return _login_page(
                state,
                request,
                flow,
                status=503,
                username=username,
                error="Signing in is briefly unavailable. Try again in a few seconds.",
                headers={"Retry-After": str(retry)},
            )
        if checked.second_factor_due:
            # The password was right; the flow's next step is the second factor. The attempt
            # stays counted as a failed login until the factor passes (contract §8.3).
            return await _second_factor_step(state, db, request, checked, flow, attempt)
        # The flow was read before the password check's commit: read it again.
        flow, lost = await _flow(state, db, request, flow_id)
        if lost:
            return expired_flow(state, request)
        return await _signed_in(
            state,
            db,
            request,
            checked.user,
            password_authentication(state.sessions.now()),
            flow,
            attempt,
        )


def _signup_page(
    state: AuthState,
    request: Request,
    flow: LoginFlow | None,
    *,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    authorization = request_of(flow) if flow is not None else None
    response = pages_of(request).render(
        request,
        "signup.html",
        status=status,
        purpose="signup",
        flow=flow.id if flow else None,
        form_action=[authorization.redirect_uri] if authorization else [],
        client_id=authorization.client_id if authorization else None,
        values=values or {},
        errors=errors or {},
        error=error,
        registration_open=state.settings.registration_open,
    )
    response.headers.update(headers or {})
    return response


@router.get("/signup")
async def signup_page(request: Request) -> Response:
    state = auth_state(request)
    async with transaction(state.session_maker) as db:
        flow, lost = await _flow(state, db, request, request.query_params.get("flow"))
        if lost:
            return expired_flow(state, request)
        return _signup_page(state, request, flow)


def _field_of(message: str) -> str:
    lowered = message.lower()
    for field in ("username", "email", "password"):
        if lowered.startswith(f"the {field}"):
            return field
    return "password" if "password" in lowered else "username"


@router.post("/signup")
async def signup_submit(request: Request) -> Response:
    state = auth_state(request)
    settings = state.settings
    form = await read_form(request)
    if form is None:
        return csrf_refused(state, request)
    flow_id = form.get("flow") or None
    try:
        pages_of(request).csrf.check(request, form.get("csrf"), "signup", flow_id)
    except CsrfFailed:
        return csrf_refused(state, request)
    values = {
        "username": form.get("username", "").strip(),
        "email": form.get("email", "").strip(),
    }
    password = form.get("password", "")
    attempt = Attempt(
        request_client_address(request, settings), request.headers.get("user-agent"), via="hosted"
    )
    async with transaction(state.session_maker) as db:
        flow, lost = await _flow(state, db, request, flow_id)
        if lost:
            return expired_flow(state, request)

        def again(status: int, **kwargs: Any) -> Response:
            return _signup_page(state, request, flow, status=status, values=values, **kwargs)

        if not settings.registration_open:
            return again(403, error="Sign-up is closed here. Ask the administrator for an account.")
        missing = {
            name: words
            for name, words in (
                ("username", "Choose a username."),
                ("email", "Enter your email address."),
                ("password", "Choose a password."),
            )
            if not (values.get(name) if name != "password" else password)
        }
        if missing:
            return again(400, errors=missing)
        try:
            await state.throttle.registration(attempt.ip, db=db)
        except Throttled as throttled:
            return again(
                429,
                error="Too many new accounts from this network. Try again "
                f"{_wait_words(throttled.retry_after)}.",
                headers={"Retry-After": str(throttled.retry_after)},
            )
        except ThrottleUnavailable:
            return again(503, error="Sign-up is briefly unavailable. Try again in a few seconds.")
        try:
            # Validated before any database work; register() hashes outside any transaction.
            account = new_user(
                username=values["username"], email=values["email"], password=password
            )
            user = await register(db, state.passwords, account)
        except (InvalidIdentifier, WeakPassword) as exc:
            text = str(exc)
            sentence = text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
            return again(422, errors={_field_of(text): sentence})
        except UserExists:
            return again(
                409,
                errors={
                    "username": "This username or email is already registered. Sign in "
                    "instead, or choose another."
                },
            )
        except HashingBusy:
            return again(503, error="Sign-up is briefly busy. Try again in a few seconds.")
        audit.record(
            db,
            audit.USER_REGISTERED,
            user_id=user.id,
            ip=attempt.ip,
            user_agent=attempt.user_agent,
            detail={"via": "hosted"},
        )
        return await _signed_in(
            state, db, request, user, password_authentication(state.sessions.now()), flow, attempt
        )
