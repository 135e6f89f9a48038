"""The auth server's running parts, built and closed by the lifespan (`AuthState.open`).

This is the composition root's inventory: only `api/deps.py` reads it, to hand each route the
one collaborator it uses. Services and grants receive their own collaborators when they are
built here; none of them ever sees this object.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from auth_server import audit
from auth_server.factors.lock import FactorLocks
from auth_server.factors.login import SecondFactorLogin
from auth_server.factors.recovery_codes import RecoveryCodeHasher
from auth_server.factors.repository import Challenges, Passkeys, RecoveryCodes, TotpCredentials
from auth_server.factors.service import FactorService
from auth_server.factors.throttle import FactorThrottle
from auth_server.factors.webauthn import RelyingParty
from auth_server.keys.notifications import KeyChangeChannel, key_change_channel
from auth_server.keys.store import KeyStore
from auth_server.oauth.clients import ClientAuthenticator, ClientDirectory, sync_page_client
from auth_server.oauth.codes import AuthorizationCodes
from auth_server.oauth.flows import LoginFlows
from auth_server.oauth.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    Grant,
    PasswordGrant,
    RefreshTokenGrant,
)
from auth_server.oauth.introspection import TokenIntrospection
from auth_server.oauth.limits import SessionLimits
from auth_server.oauth.revocation import TokenRevocation
from auth_server.oauth.tokens import TokenIssuer
from auth_server.oidc.id_token import IdTokenIssuer
from auth_server.ratelimit import (
    AttemptCounter,
    RateLimiter,
    limits_key_prefix,
    open_counter_store,
    open_storage,
)
from auth_server.redis_client import open_redis
from auth_server.revocations import RevocationKind, RevocationPublisher
from auth_server.sessions.grace import GraceCipher
from auth_server.sessions.repository import open_rotation_pool
from auth_server.sessions.service import SessionService
from auth_server.settings import AuthSettings
from auth_server.users.login import PasswordLogin
from auth_server.users.passwords import PasswordHasher
from auth_server.users.throttle import LoginThrottle
from shared.revocation_feed import revocation_channel
from shared.service.db import create_engine, create_session_maker, transaction
from shared.service.metrics import ServiceMetrics
from shared.verification import TokenVerifier

log = logging.getLogger("auth_server.state")

POOL_CLOSE_TIMEOUT = 5.0  # seconds the refresh pool's connections get to be handed back


class AuthMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__()
        self.tokens_issued: Counter = self.counter(
            "tokens_issued", "Access tokens issued, by grant", ("grant",)
        )


def kid_retired_hook(
    session_maker: async_sessionmaker[AsyncSession], revocations: RevocationPublisher
) -> Callable[[str, dt.datetime], Awaitable[None]]:
    """The KeyStore's `on_key_retired`: a retired key's tokens stop verifying everywhere (a `kid`
    event in the revocation feed), and the audit trail says so."""

    async def hook(kid: str, until: dt.datetime) -> None:
        async with transaction(session_maker) as db:
            await revocations.add(db, RevocationKind.KID, kid, until)
            audit.record(db, audit.KEY_RETIRED, detail={"kid": kid})

    return hook


def build_key_store(
    settings: AuthSettings,
    session_maker: async_sessionmaker[AsyncSession],
    revocations: RevocationPublisher,
    redis: Any | None = None,
) -> KeyStore:
    """A key store whose emergency retirements reach the revocation feed and whose changes,
    with Redis, reach every running replica at once (`keys rotate` uses the same)."""
    store = KeyStore(session_maker, settings)
    store.on_key_retired = kid_retired_hook(session_maker, revocations)
    if redis is not None:
        store.on_keys_changed = KeyChangeChannel(
            redis, key_change_channel(settings.redis_prefix)
        ).publish
    return store


def build_factors(
    settings: AuthSettings,
    *,
    sessions: SessionService,
    counter: AttemptCounter,
    clock: Callable[[], dt.datetime],
) -> tuple[FactorService, SecondFactorLogin]:
    """The account page's factor service and the sign-in's second-factor steps, over the same
    stores (and the password throttle's attempt counter: one store of counts, separate keys)."""
    secret = settings.key_encryption_secret()
    totp_credentials = TotpCredentials(secret)
    recovery = RecoveryCodes()
    hasher = RecoveryCodeHasher(secret)
    passkeys = Passkeys()
    challenges = Challenges()
    locks = FactorLocks()
    relying_party = RelyingParty(
        rp_id=settings.rp_id,
        rp_name=settings.webauthn_rp_name,
        origins=settings.webauthn_expected_origins,
    )
    service = FactorService(
        settings,
        sessions=sessions,
        totp_credentials=totp_credentials,
        recovery=recovery,
        recovery_hasher=hasher,
        passkeys=passkeys,
        challenges=challenges,
        locks=locks,
        relying_party=relying_party,
        clock=clock,
    )
    login = SecondFactorLogin(
        settings,
        totp_credentials=totp_credentials,
        recovery=recovery,
        recovery_hasher=hasher,
        passkeys=passkeys,
        challenges=challenges,
        locks=locks,
        throttle=FactorThrottle(settings, counter),
        relying_party=relying_party,
        clock=clock,
    )
    return service, login


@dataclass
class AuthState:
    settings: AuthSettings
    engine: AsyncEngine
    session_maker: async_sessionmaker[AsyncSession]
    redis: Any | None  # redis.asyncio.Redis when AUTH_REDIS_URL is set
    rotation_pool: Any | None  # asyncpg.Pool for the refresh grant, on PostgreSQL
    metrics: AuthMetrics
    keys: KeyStore
    passwords: PasswordHasher
    clients: ClientAuthenticator
    limiter: RateLimiter
    throttle: LoginThrottle
    verifier: TokenVerifier
    sessions: SessionService
    grants: Mapping[str, Grant]
    revocation: TokenRevocation
    introspection: TokenIntrospection
    factors: FactorService
    factor_login: SecondFactorLogin
    routine: audit.RoutineCounts  # routine refreshes, counted for the audit trail
    login: PasswordLogin
    id_tokens: IdTokenIssuer
    codes: AuthorizationCodes
    flows: LoginFlows

    @classmethod
    async def open(
        cls,
        settings: AuthSettings,
        *,
        metrics: AuthMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> AuthState:
        """`clock` (epoch seconds) is what tokens are issued, verified and rotated by; tests
        move it instead of sleeping."""

        def now() -> dt.datetime:
            return dt.datetime.fromtimestamp(clock(), dt.UTC)

        engine = create_engine(settings.database_url)
        session_maker = create_session_maker(engine)
        async with transaction(session_maker) as db:
            # Contract §8.1: `web-page`'s redirect URIs follow AUTH_CORS_ORIGINS at serve time.
            await sync_page_client(db, settings.cors_origins)
        redis = open_redis(settings.redis_url)
        metrics = metrics or AuthMetrics()
        publisher = RevocationPublisher(redis, revocation_channel(settings.redis_prefix))
        keys = build_key_store(settings, session_maker, publisher)
        await keys.ensure_keys()
        await keys.start()
        if redis is not None:
            keys.attach_push(KeyChangeChannel(redis, key_change_channel(settings.redis_prefix)))
        passwords = PasswordHasher(settings)
        storage = open_storage(settings)
        limiter = RateLimiter(storage, redis, limits_key_prefix(settings))
        counter = AttemptCounter(open_counter_store(settings, engine, redis))
        throttle = LoginThrottle(settings, counter)
        limits = SessionLimits(settings, limiter)
        issuer = TokenIssuer(
            keys,
            issuer=settings.issuer_base,
            audience=settings.audience,
            ttl=settings.access_token_ttl,
            clock=clock,
        )
        # The auth server verifies its own tokens with its own key store (no HTTP).
        verifier = TokenVerifier(
            issuer=settings.issuer_base,
            audience=settings.audience,
            key_source=keys,
            leeway=settings.leeway,
            metrics=metrics,
            clock=clock,
        )
        rotation_pool = (
            await open_rotation_pool(settings.database_url)
            if engine.dialect.name == "postgresql"
            else None
        )
        routine = audit.RoutineCounts(session_maker)
        sessions = SessionService(
            settings,
            grace=GraceCipher(settings.key_encryption_secret()),
            revocations=publisher,
            clock=now,
            one_statement_pool=rotation_pool,
            routine=routine,
        )
        factors, factor_login = build_factors(
            settings, sessions=sessions, counter=counter, clock=now
        )
        login = PasswordLogin(
            passwords=passwords,
            throttle=throttle,
            second_factor_due=factor_login.second_factor_due,
        )
        id_tokens = IdTokenIssuer(keys, issuer=settings.issuer_base, clock=clock)
        codes = AuthorizationCodes(clock=now)
        grants: dict[str, Grant] = {
            "authorization_code": AuthorizationCodeGrant(
                codes=codes, sessions=sessions, tokens=issuer, id_tokens=id_tokens, clock=now
            ),
            "password": PasswordGrant(
                login=login, sessions=sessions, tokens=issuer, factors=factor_login, clock=now
            ),
            "refresh_token": RefreshTokenGrant(
                sessions=sessions, tokens=issuer, limits=limits, id_tokens=id_tokens
            ),
            "client_credentials": ClientCredentialsGrant(issuer),
        }
        return cls(
            settings=settings,
            engine=engine,
            session_maker=session_maker,
            redis=redis,
            rotation_pool=rotation_pool,
            metrics=metrics,
            keys=keys,
            passwords=passwords,
            clients=ClientAuthenticator(passwords, ClientDirectory(clock=clock)),
            limiter=limiter,
            throttle=throttle,
            verifier=verifier,
            sessions=sessions,
            grants=grants,
            revocation=TokenRevocation(
                settings,
                sessions=sessions,
                verifier=verifier,
                revocations=publisher,
                limits=limits,
                clock=clock,
            ),
            introspection=TokenIntrospection(
                issuer=settings.issuer_base, sessions=sessions, verifier=verifier
            ),
            factors=factors,
            factor_login=factor_login,
            routine=routine,
            login=login,
            id_tokens=id_tokens,
            codes=codes,
            flows=LoginFlows(clock=now),
        )

    async def aclose(self) -> None:
        try:
            await self.routine.flush()  # what this process counted since its last write
        except Exception:
            log.exception("could not write the audit counts at shutdown")
        await self.keys.aclose()
        await self.limiter.aclose()
        await self.throttle.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        if self.rotation_pool is not None:
            try:
                await asyncio.wait_for(self.rotation_pool.close(), POOL_CLOSE_TIMEOUT)
            except TimeoutError:
                self.rotation_pool.terminate()
        await self.engine.dispose()
        self.passwords.close()


__all__ = ["AuthMetrics", "AuthState", "build_factors", "build_key_store", "kid_retired_hook"]
