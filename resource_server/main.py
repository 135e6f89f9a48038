"""create_app(settings) and the lifespan: database, key set, verifier, revocation feed, refresher."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from resource_server.api import health, notes, openapi
from resource_server.api.web import mount_web
from resource_server.settings import ResourceSettings
from resource_server.state import ResourceState
from shared.fastapi import (
    NEW_TOKEN_HEADERS,
    install_bearer_handlers,
    refreshed_token_headers,
    set_token_url,
)
from shared.keys import KeySource
from shared.service.docs import install_docs
from shared.service.edge import EdgeMiddleware, content_security_policy
from shared.service.metrics import ServiceMetrics, fastapi_telemetry
from shared.service.problem import install_problem_handlers
from shared.service.routing import add_routes

log = logging.getLogger("resource_server")


def create_app(
    settings: ResourceSettings | None = None,
    *,
    key_source: KeySource | None = None,
    http: httpx.AsyncClient | None = None,
    revocation_feed: bool = True,
) -> FastAPI:
    """The notes API. Tests may inject a key source (pinned keys) and an HTTP client; with an
    injected key source the revocation feed is read only if `revocation_feed` stays True."""
    settings = settings or ResourceSettings()
    metrics = ServiceMetrics()  # a registry of this app's own: tests build many apps per process

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await ResourceState.open(
            settings, metrics, key_source=key_source, http=http, revocation_feed=revocation_feed
        )
        app.state.resource = state
        try:
            yield
        finally:
            await state.aclose()

    app = FastAPI(
        title="notes-auth: notes API",
        version="0.1.0",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(settings.opentelemetry),
        docs_url=None,  # served by install_docs: local assets, no inline script
        redoc_url=None,
        description="Notes, protected by RS256 access tokens verified locally against the auth "
        "server's published keys.",
    )
    if settings.cors_origins:
        # Only for pages on other origins: the notes page is served by this server itself.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Refresh-Token"],
            expose_headers=[*NEW_TOKEN_HEADERS, "Location", "WWW-Authenticate", "Retry-After"],
            max_age=600,
        )
    # One middleware layer for every request: body cap, security headers and, after a
    # transparent refresh, the New-* headers (docs/guides/tune-and-benchmark.md).
    install_bearer_handlers(
        app, transparent_refresh=settings.transparent_refresh, headers_middleware=False
    )
    # The page talks to this origin and to the auth server's.
    auth_origin = "{0.scheme}://{0.netloc}".format(urlsplit(settings.issuer))
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=settings.max_body_bytes,
        csp=content_security_policy([auth_origin]),
        extra_headers=refreshed_token_headers if settings.transparent_refresh else None,
    )
    install_problem_handlers(app, retry_after=settings.retry_after)
    add_routes(app, notes.router, health.router)
    metrics.install_route(app)
    mount_web(app)
    # Swagger UI's Authorize button logs in as the public `web` client (password grant).
    install_docs(app, client_id="web", scopes="notes:read notes:write")
    set_token_url(app, f"{settings.issuer}/token")
    openapi.install(app, settings)  # every status and content type each route can answer
    return app


def app_factory() -> FastAPI:
    """For `uvicorn --factory resource_server.main:app_factory` (several workers)."""
    return create_app()
