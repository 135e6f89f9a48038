"""create_app(settings) and the lifespan that holds the engine, keys, hasher and throttle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from auth_server.api import (
    account,
    admin,
    health,
    jwks,
    metadata,
    revocation,
    sessions,
    token,
    users,
)
from auth_server.api.oauth_errors import install_oauth_handlers
from auth_server.context import AuthContext
from auth_server.keys.store import KeyStore
from auth_server.oauth.tokens import TokenIssuer
from auth_server.sessions.grace import GraceCipher
from auth_server.sessions.revocation import kid_retired_hook
from auth_server.sessions.runtime import start_background
from auth_server.settings import AuthSettings
from auth_server.users.passwords import PasswordHasher
from auth_server.users.throttle import LoginThrottle
from shared.db import create_engine, create_session_maker
from shared.metrics import install_metrics_route
from shared.problem import install_problem_handlers
from shared.security import install_bearer_handlers, set_token_url
from shared.verification import TokenVerifier

log = logging.getLogger("auth_server")


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or AuthSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        session_maker = create_session_maker(engine)
        redis = None
        if settings.redis_url:
            import redis.asyncio as aioredis

            redis = aioredis.Redis.from_url(settings.redis_url)
        keys = KeyStore(session_maker, settings)
        keys.on_key_retired = kid_retired_hook(session_maker, settings, redis)
        await keys.ensure_keys()
        await keys.start()
        ctx = AuthContext(
            settings=settings,
            engine=engine,
            session_maker=session_maker,
            keys=keys,
            passwords=PasswordHasher(settings),
            throttle=LoginThrottle(settings),
            tokens=TokenIssuer(settings, keys),
            # The auth server verifies its own tokens with its own key store (no HTTP).
            verifier=TokenVerifier(
                issuer=settings.issuer_base, audience=settings.audience, key_source=keys, leeway=5
            ),
            grace=GraceCipher(settings.key_encryption_secret()),
            redis=redis,
        )
        app.state.ctx = ctx
        app.state.token_verifier = ctx.verifier
        stop_background = await start_background(ctx)
        try:
            yield
        finally:
            await stop_background()
            await keys.aclose()
            await ctx.throttle.aclose()
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="notes-auth: auth server",
        version="0.1.0",
        lifespan=lifespan,
        # Swagger UI's Authorize button logs in as the public `web` client (password grant).
        swagger_ui_init_oauth={"clientId": "web", "scopes": "notes:read notes:write"},
        description="OAuth2 password, refresh-token and client-credentials grants; RS256 JWT "
        "access tokens (RFC 9068); sessions, revocation and introspection.",
    )
    app.state.settings = settings
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=False,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Refresh-Token"],
        max_age=600,
    )
    install_problem_handlers(app)
    install_oauth_handlers(app)
    install_bearer_handlers(app)
    for module in (metadata, jwks, token, revocation, users, account, sessions, admin, health):
        app.include_router(module.router)
    install_metrics_route(app)
    set_token_url(app, f"{settings.issuer_base}/token")
    return app


def app_factory() -> FastAPI:
    """For `uvicorn --factory auth_server.main:app_factory` (several workers)."""
    return create_app()
