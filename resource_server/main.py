"""create_app(settings) and the lifespan: database, key set, verifier, revocation feed, refresher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from resource_server.api import health, notes
from resource_server.api.body_limit import BodyLimitMiddleware
from resource_server.api.web import mount_web
from resource_server.settings import ResourceSettings
from shared.db import create_engine, create_session_maker
from shared.denylist import Denylist
from shared.jwks import RemoteKeySet
from shared.keys import KeySource
from shared.metrics import install_metrics_route
from shared.problem import install_problem_handlers
from shared.refresh import TransparentRefresher
from shared.revocation_feed import RevocationFeedClient
from shared.security import (
    NEW_TOKEN_HEADERS,
    install_bearer_handlers,
    install_token_headers,
    set_token_url,
)
from shared.token_cache import VerifiedTokenCache
from shared.verification import TokenVerifier

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
    issuer = settings.issuer

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        app.state.session_maker = create_session_maker(engine)
        own_http = http is None
        client = http or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.jwks_fetch_timeout), follow_redirects=False
        )
        remote: RemoteKeySet | None = None
        source: KeySource
        if key_source is None:
            remote = RemoteKeySet(
                issuer,
                http=client,
                min_refresh=settings.jwks_min_refresh,
                cache_floor=settings.jwks_cache_floor,
                timeout=settings.jwks_fetch_timeout,
                max_bytes=settings.jwks_max_bytes,
                cache_path=settings.var_dir / "jwks-cache.json",
                retry_interval=settings.jwks_retry_interval,
            )
            source = remote
        else:
            source = key_source
        app.state.key_source = source
        denylist = Denylist(settings.denylist_max_entries)
        app.state.denylist = denylist
        app.state.token_verifier = TokenVerifier(
            issuer=issuer,
            audience=settings.audience,
            key_source=source,
            algorithms=settings.algorithms,
            leeway=settings.leeway,
            denylist=denylist,
            cache=VerifiedTokenCache(settings.token_cache_size),
        )
        metadata = remote.metadata if remote else None
        feed: RevocationFeedClient | None = None
        if revocation_feed:
            feed = RevocationFeedClient(
                denylist,
                http=client,
                feed_url=f"{issuer}/revocations",
                poll_interval=settings.revocation_poll_interval,
                redis_url=settings.redis_url,
                redis_channel=f"{settings.redis_prefix}:revocations",
                poll_interval_with_redis=settings.revocation_poll_interval_with_redis,
            )
            app.state.revocation_feed = feed
        app.state.token_refresher = (
            TransparentRefresher(
                http=client, token_endpoint=f"{issuer}/token", remember=settings.refresh_remember
            )
            if settings.transparent_refresh
            else None
        )
        app.state.auth_metadata = metadata

        async def start_key_set() -> None:
            # In the background: the service starts (and reports not ready) while the auth
            # server is down, and becomes ready once a key set is loaded.
            assert remote is not None
            await remote.start()
            if remote.metadata:
                app.state.auth_metadata = remote.metadata
                if feed is not None:
                    feed.feed_url = remote.metadata.get("revocation_feed_endpoint", feed.feed_url)
                if app.state.token_refresher is not None:
                    endpoint = remote.metadata.get("token_endpoint")
                    if isinstance(endpoint, str):
                        app.state.token_refresher.token_endpoint = endpoint

        starter = asyncio.create_task(start_key_set()) if remote is not None else None
        if feed is not None:
            await feed.start()
        try:
            yield
        finally:
            if starter is not None and not starter.done():
                starter.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await starter
            if feed is not None:
                await feed.aclose()
            if remote is not None:
                await remote.aclose()
            if own_http:
                await client.aclose()
            await engine.dispose()

    app = FastAPI(
        title="notes-auth: notes API",
        version="0.1.0",
        lifespan=lifespan,
        # Swagger UI's Authorize button logs in as the public `web` client (password grant).
        swagger_ui_init_oauth={"clientId": "web", "scopes": "notes:read notes:write"},
        description="Notes, protected by RS256 access tokens verified locally against the auth "
        "server's published keys.",
    )
    app.state.settings = settings
    app.state.refresh_retry_after = settings.refresh_retry_after
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=False,
        allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Refresh-Token"],
        expose_headers=[*NEW_TOKEN_HEADERS, "Location", "WWW-Authenticate", "Retry-After"],
        max_age=600,
    )
    install_token_headers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    install_problem_handlers(app)
    install_bearer_handlers(app)
    app.include_router(notes.router)
    app.include_router(health.router)
    install_metrics_route(app)
    mount_web(app)
    set_token_url(app, f"{issuer}/token")
    return app


def app_factory() -> FastAPI:
    """For `uvicorn --factory resource_server.main:app_factory` (several workers)."""
    return create_app()
