"""RevocationFeedClient: keeps a resource server's Denylist current.

Polls the auth server's feed (`GET /revocations?since=CURSOR`) every `poll_interval` seconds.
With Redis configured it also subscribes to the revocation channel, which delivers events at
once; the feed is then read less often, and again after every reconnect, because it is the
source of truth (pub/sub drops messages while disconnected).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import httpx

from shared.denylist import Denylist
from shared.metrics import revocation_events, revocation_feed_errors

log = logging.getLogger("shared.revocation_feed")


class RevocationFeedClient:
    def __init__(
        self,
        denylist: Denylist,
        *,
        http: httpx.AsyncClient,
        feed_url: str,
        poll_interval: float,
        redis_url: str | None = None,
        redis_channel: str = "notes-auth:revocations",
        timeout: float = 5.0,
        poll_interval_with_redis: float = 30.0,
    ) -> None:
        self.denylist = denylist
        self.feed_url = feed_url
        self._http = http
        self._interval = poll_interval
        self._redis_url = redis_url
        self._channel = redis_channel
        self._timeout = timeout
        self._interval_with_redis = poll_interval_with_redis
        self.cursor: str | None = None
        self.synced = False  # the feed has been read at least once
        self._tasks: list[asyncio.Task[None]] = []
        self._poll_lock = asyncio.Lock()
        self._applied = revocation_events()
        self._errors = revocation_feed_errors()

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._poll_loop(), name="revocation-feed"))
        if self._redis_url:
            self._tasks.append(asyncio.create_task(self._subscribe_loop(), name="revocation-redis"))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def poll_once(self) -> int:
        """Read the feed until it is drained; returns the number of events applied."""
        applied = 0
        async with self._poll_lock:
            for _ in range(100):  # bounded: a feed that never ends is a bug, not a reason to spin
                params = {"since": self.cursor} if self.cursor is not None else {}
                response = await self._http.get(self.feed_url, params=params, timeout=self._timeout)
                response.raise_for_status()
                body = response.json()
                events = body.get("events") if isinstance(body, dict) else None
                cursor = body.get("cursor") if isinstance(body, dict) else None
                if not isinstance(events, list) or not isinstance(cursor, str):
                    raise ValueError("malformed revocation feed page")
                for event in events:
                    if isinstance(event, dict) and self.denylist.apply(event):
                        applied += 1
                self.cursor = cursor
                self.synced = True
                if not events or not body.get("has_more", False):
                    break
        if applied:
            self._applied.labels(source="feed").inc(applied)
        return applied

    async def _poll_loop(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception as exc:
                self._errors.inc()
                log.warning("revocation feed read failed: %s", exc)
            interval = self._interval
            if self._redis_url:
                interval = max(self._interval, self._interval_with_redis)
            await asyncio.sleep(interval)

    def _apply_message(self, data: Any) -> None:
        try:
            event = json.loads(data)
        except (TypeError, ValueError):
            self._errors.inc()
            return
        if isinstance(event, dict) and self.denylist.apply(event):
            self._applied.labels(source="redis").inc()
        else:
            self._errors.inc()

    async def _subscribe_loop(self) -> None:
        import redis.asyncio as redis

        assert self._redis_url is not None
        backoff = 0.5
        while True:
            client = redis.Redis.from_url(self._redis_url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    backoff = 0.5
                    # Anything published while we were away is in the feed: read it now.
                    with contextlib.suppress(Exception):
                        await self.poll_once()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._apply_message(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._errors.inc()
                log.warning("revocation channel lost (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()


__all__ = ["RevocationFeedClient"]
