"""The resource server's running parts, built and closed by the lifespan (`ResourceState.open`).

Only `api/deps.py` and `api/health.py` read it; routes receive single collaborators.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from resource_server.settings import ResourceSettings
from shared.denylist import Denylist
from shared.jwks import RemoteKeySet
from shared.keys import KeySource
from shared.refresh import TransparentRefresher
from shared.revocation_feed import RevocationFeedClient, revocation_channel
from shared.service.db import create_engine, create_session_maker
from shared.service.metrics import ServiceMetrics
from shared.token_cache import VerifiedTokenCache
from shared.verification import TokenVerifier


@dataclass
class ResourceState:
    settings: ResourceSettings
    engine: AsyncEngine
    session_maker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    key_source: KeySource
    remote_keys: RemoteKeySet | None  # None when keys are injected (tests, pinned keys)
    denylist: Denylist
    verifier: TokenVerifier
    feed: RevocationFeedClient | None
    refresher: TransparentRefresher | None
    own_http: bool = True
    _starter: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def auth_metadata(self) -> dict[str, Any]:
        """The auth server's RFC 8414 metadata, once the key set has been fetched."""
        return (self.remote_keys.metadata if self.remote_keys else None) or {}

    @property
    def keys_ready(self) -> bool:
        return bool(getattr(self.key_source, "ready", True))

    @property
    def revocations_ready(self) -> bool:
        return self.denylist.synced

    @property
    def ready(self) -> bool:
        """A key set that is loaded and not too old, and a revocation state loaded or synced."""
        return self.keys_ready and self.revocations_ready

    @classmethod
    async def open(
        cls,
        settings: ResourceSettings,
        metrics: ServiceMetrics,
        *,
        key_source: KeySource | None = None,
        http: httpx.AsyncClient | None = None,
        revocation_feed: bool = True,
    ) -> ResourceState:
        issuer = settings.issuer
        engine = create_engine(settings.database_url)
        client = http or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.jwks_fetch_timeout), follow_redirects=False
        )
        remote: RemoteKeySet | None = None
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
                metrics=metrics,
                max_staleness=settings.jwks_max_staleness,
            )
        source: KeySource = remote if remote is not None else key_source  # type: ignore[assignment]
        denylist = Denylist(settings.denylist_max_entries, leeway=settings.leeway)
        verifier = TokenVerifier(
            issuer=issuer,
            audience=settings.audience,
            key_source=source,
            algorithms=settings.algorithms,
            leeway=settings.leeway,
            denylist=denylist,
            cache=VerifiedTokenCache(settings.token_cache_size),
            metrics=metrics,
        )
        feed = None
        if revocation_feed:
            feed = RevocationFeedClient(
                denylist,
                http=client,
                feed_url=f"{issuer}/revocations",
                poll_interval=settings.revocation_poll_interval,
                redis_url=settings.redis_url,
                redis_channel=revocation_channel(settings.redis_prefix),
                poll_interval_with_redis=settings.revocation_poll_interval_with_redis,
                metrics=metrics,
                state_path=settings.var_dir / "revocations.json",
                auth=settings.feed_credentials,
            )
        refresher = None
        if settings.transparent_refresh:
            refresher = TransparentRefresher(
                http=client,
                token_endpoint=f"{issuer}/token",
                remember=settings.refresh_remember,
                retry_after=settings.refresh_retry_after,
            )
        state = cls(
            settings=settings,
            engine=engine,
            session_maker=create_session_maker(engine),
            http=client,
            key_source=source,
            remote_keys=remote,
            denylist=denylist,
            verifier=verifier,
            feed=feed,
            refresher=refresher,
            own_http=http is None,
        )
        await state._start()
        return state

    async def _start(self) -> None:
        if self.remote_keys is not None:
            # In the background: the service starts (and reports not ready) while the auth
            # server is down, and becomes ready once a key set is loaded.
            self._starter = asyncio.create_task(self._start_key_set(), name="key-set-start")
        if self.feed is not None:
            await self.feed.start()

    async def _start_key_set(self) -> None:
        assert self.remote_keys is not None
        await self.remote_keys.start()
        metadata = self.auth_metadata
        # Everything else is found through the issuer's RFC 8414 metadata.
        feed_url = metadata.get("revocation_feed_endpoint")
        if self.feed is not None and isinstance(feed_url, str):
            self.feed.feed_url = feed_url
        token_endpoint = metadata.get("token_endpoint")
        if self.refresher is not None and isinstance(token_endpoint, str):
            self.refresher.token_endpoint = token_endpoint

    async def aclose(self) -> None:
        if self._starter is not None and not self._starter.done():
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._starter
        if self.feed is not None:
            await self.feed.aclose()
        if self.remote_keys is not None:
            await self.remote_keys.aclose()
        if self.own_http:
            await self.http.aclose()
        await self.engine.dispose()


__all__ = ["ResourceState"]
