"""create_app(settings) and the lifespan that opens the auth server's parts and its schedules."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from auth_server.api import (
    account,
    admin,
    health,
    jwks,
    metadata,
    openapi,
    revocation,
    sessions,
    token,
    userinfo,
    users,
)
from auth_server.api.oauth_errors import install_oauth_handlers
from auth_server.keys.rotation import run_rotation_schedule
from auth_server.persistence.sweeper import run_sweeper
from auth_server.settings import AuthSettings
from auth_server.state import AuthMetrics, AuthState
from auth_server.web import authorize, consent, login, logout
from auth_server.web.pages import install_pages
from shared.fastapi import install_bearer_handlers, set_token_url
from shared.service.docs import install_docs
from shared.service.edge import EdgeMiddleware, content_security_policy
from shared.service.metrics import fastapi_telemetry
from shared.service.problem import install_problem_handlers
from shared.service.routing import add_routes

log = logging.getLogger("auth_server")

# Pages a browser navigates to, never fetches: RFC 9700 §2.6 says the authorization endpoint MUST
# NOT support CORS, and the hosted pages and the end-session endpoint have no use for it either.
NO_CORS_PATHS = ("/authorize", "/login", "/login/code", "/signup", "/consent", "/logout")


class BrowserOnlyPathsCORS(CORSMiddleware):
    """Starlette's CORS, except at the paths a browser only navigates to (NO_CORS_PATHS): there
    a cross-origin script gets no CORS answer, so it can't read what they say."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith(NO_CORS_PATHS):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def start_schedules(state: AuthState) -> Callable[[], Awaitable[None]]:
    """Start the background schedules (the sweeper, key rotation, the audit trail's counts);
    returns what stops them."""
    stop_event = asyncio.Event()
    tasks = [
        asyncio.create_task(
            run_sweeper(state.session_maker, state.settings, stop=stop_event), name="sweeper"
        ),
        asyncio.create_task(
            run_rotation_schedule(state.keys, state.settings, stop=stop_event),
            name="key-rotation",
        ),
        asyncio.create_task(state.routine.run(stop=stop_event), name="audit-counts"),
    ]

    async def stop() -> None:
        stop_event.set()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=5)

    return stop


def create_app(
    settings: AuthSettings | None = None, *, clock: Callable[[], float] = time.time
) -> FastAPI:
    """The auth server. `clock` (epoch seconds) is injectable so that tests move time instead
    of sleeping."""
    settings = settings or AuthSettings()
    metrics = AuthMetrics()  # a registry of this app's own: tests build many apps per process

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await AuthState.open(settings, metrics=metrics, clock=clock)
        app.state.auth = state
        stop_schedules = await start_schedules(state)
        try:
            yield
        finally:
            await stop_schedules()
            await state.aclose()

    app = FastAPI(
        title="notes-auth: auth server",
        version="0.1.0",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(settings.opentelemetry),
        docs_url=None,  # served by install_docs: local assets, no inline script
        redoc_url=None,
        description="An OAuth 2.1 / OpenID Connect provider: authorization code with PKCE at "
        "/authorize and the hosted sign-in (HTML pages, outside this document: /authorize, "
        "/login, /signup, /consent, /logout answer with pages and redirects), the refresh-token, "
        "client-credentials and first-party password grants; RS256 JWT access tokens "
        "(RFC 9068) and id_tokens; userinfo; sessions, revocation and introspection.",
    )
    app.add_middleware(
        BrowserOnlyPathsCORS,
        # Exact origins, never `*`: the web page sends its refresh cookie with credentialed
        # requests (production refuses an open list).
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Refresh-Token"],
        expose_headers=["Retry-After", "WWW-Authenticate"],
        max_age=600,
    )
    # One middleware layer: every body capped before anything parses it (413 problem+json),
    # security headers on every response.
    app.add_middleware(
        EdgeMiddleware, max_body_bytes=settings.max_body_bytes, csp=content_security_policy()
    )
    install_problem_handlers(app, retry_after=settings.retry_after)
    install_oauth_handlers(app)
    install_bearer_handlers(app, transparent_refresh=False)
    add_routes(
        app,
        *(
            m.router
            for m in (metadata, jwks, token, revocation, userinfo, users, account, sessions, admin)
        ),
        health.router,
        # The hosted pages and the browser endpoints (HTML and redirects, outside the schema).
        *(m.router for m in (authorize, login, consent, logout)),
    )
    install_pages(app, settings.issuer_base, settings.key_encryption_secret())
    metrics.install_route(app)
    # Swagger UI's Authorize button logs in as the public `web` client (password grant).
    install_docs(app, client_id="web", scopes="notes:read notes:write")
    set_token_url(app, f"{settings.issuer_base}/token")
    openapi.install(app, settings)  # every status and content type each route can answer
    return app


def app_factory() -> FastAPI:
    """For `uvicorn --factory auth_server.main:app_factory` (several workers)."""
    return create_app()
