"""AuthContext: everything the lifespan builds and closes, held on `app.state.ctx`.

Nothing here is built at import time; `auth_server.main.create_app` fills it in the lifespan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from auth_server.settings import AuthSettings

if TYPE_CHECKING:
    from auth_server.keys.store import KeyStore
    from auth_server.oauth.tokens import TokenIssuer
    from auth_server.sessions.grace import GraceCipher
    from auth_server.users.passwords import PasswordHasher
    from auth_server.users.throttle import LoginThrottle
    from shared.verification import TokenVerifier


@dataclass
class AuthContext:
    settings: AuthSettings
    engine: AsyncEngine
    session_maker: async_sessionmaker[AsyncSession]
    keys: KeyStore
    passwords: PasswordHasher
    throttle: LoginThrottle
    tokens: TokenIssuer
    verifier: TokenVerifier
    grace: GraceCipher
    redis: Any | None = None  # redis.asyncio.Redis when AUTH_REDIS_URL is set
