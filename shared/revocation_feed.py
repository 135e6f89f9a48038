"""RevocationFeedClient: keeps a resource server's Denylist current.

Polls the auth server's feed (`GET /revocations?since=CURSOR`) every `poll_interval` seconds.
With Redis configured it also subscribes to the revocation channel, which delivers events at
once; the feed is then read less often, and again after every reconnect, because it is the
source of truth (pub/sub drops messages while disconnected).

With a `state_path`, the denylist and the feed cursor are saved there (atomically) after every
change and loaded on start, so a restart during an auth-server outage forgets no revocation.
Until the state is loaded or the feed has been read once, the denylist is not `synced`, and a
verifier refuses every token (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import httpx

from shared.denylist import Denylist, write_atomically
from shared.metrics import NO_METRICS, Metrics

log = logging.getLogger("shared.revocation_feed")

DEFAULT_REDIS_PREFIX = "notes-auth"


def revocation_channel(prefix: str = DEFAULT_REDIS_PREFIX) -> str:
    """The Redis pub/sub channel of revocation events: the auth server publishes on it and
    resource servers subscribe to it, so both build the name here."""
    return f"{prefix}:revocations"


class RevocationFeedClient:
    """Keeps `denylist` current. Start it in your app's lifespan (`await feed.start()` ...
    `await feed.aclose()`). Without an `http` client it makes, and closes, its own."""

    def __init__(
        self,
        denylist: Denylist,
        *,
        feed_url: str,
        poll_interval: float = 2.0,
        http: httpx.AsyncClient | None = None,
        redis_url: str | None = None,
        redis_channel: str = revocation_channel(),
        timeout: float = 5.0,
        poll_interval_with_redis: float = 30.0,
        metrics: Metrics = NO_METRICS,
        state_path: Path | None = None,
        save_delay: float = 0.5,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.denylist = denylist
        self.feed_url = feed_url
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(follow_redirects=False)
        self._interval = poll_interval
        self._redis_url = redis_url
        self._channel = redis_channel
        self._timeout = timeout
        self._interval_with_redis = poll_interval_with_redis
        self.cursor: str | None = None
        self.redis_connected = False  # subscribed to the channel right now
        self._tasks: list[asyncio.Task[None]] = []
        self._poll_lock = asyncio.Lock()
        self._save_lock = asyncio.Lock()
        self._pending_save: asyncio.Task[None] | None = None
        self._metrics = metrics
        self._state_path = state_path
        self._save_delay = save_delay
        # HTTP Basic credentials of a confidential client, where the feed is not open.
        self._auth = httpx.BasicAuth(*auth) if auth is not None else None
        denylist.synced = False  # nothing is known until the state is loaded or the feed read

    @property
    def synced(self) -> bool:
        """The revocation state is known: loaded from disk, or read from the feed."""
        return self.denylist.synced

    async def start(self) -> None:
        self._load_state()
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
        if self._pending_save is not None and not self._pending_save.done():
            self._pending_save.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pending_save
            await self.save()  # whatever the cancelled save would have written
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> RevocationFeedClient:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def _load_state(self) -> None:
        if self._state_path is None or not self._state_path.exists():
            return
        cursor = self.denylist.load(self._state_path)
        if cursor is None:
            log.warning("ignoring the unreadable revocation state at %s", self._state_path)
            return
        self.cursor = cursor or None
        self.denylist.synced = True

    async def save(self) -> None:
        """Write the denylist and the cursor to the state file (atomically), if there is one."""
        if self._state_path is None:
            return
        async with self._save_lock:
            text = json.dumps(self.denylist.snapshot(self.cursor), separators=(",", ":"))
            try:
                await asyncio.to_thread(write_atomically, self._state_path, text)
            except OSError as exc:
                log.warning("could not save the revocation state to %s: %s", self._state_path, exc)

    def _save_soon(self) -> None:
        """Save after a short delay, once for a burst of pub/sub events."""
        if self._state_path is None:
            return
        if self._pending_save is None or self._pending_save.done():
            self._pending_save = asyncio.create_task(self._delayed_save(), name="revocation-save")

    async def _delayed_save(self) -> None:
        await asyncio.sleep(self._save_delay)
        await self.save()

    async def poll_once(self) -> int:
        """Read the feed until it is drained; returns the number of events applied."""
        applied = 0
        async with self._poll_lock:
            started_at = self.cursor
            for _ in range(100):  # bounded: a feed that never ends is a bug, not a reason to spin
                before = self.cursor
                params = {"since": self.cursor} if self.cursor is not None else {}
                response = await self._http.get(
                    self.feed_url, params=params, timeout=self._timeout, auth=self._auth
                )
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
                self.denylist.synced = True
                # A cursor that did not move (events younger than the feed's settle time, more
                # than a page of them) is read again at the next poll, not in a loop now.
                if not events or not body.get("has_more", False) or cursor == before:
                    break
            if applied or self.cursor != started_at:
                await self.save()
        if applied:
            self._metrics.revocations_applied("feed", applied)
        return applied

    async def _poll_loop(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception as exc:
                self._metrics.revocation_feed_failed()
                log.warning("revocation feed read failed: %s", exc)
            interval = self._interval
            if self._redis_url:
                interval = max(self._interval, self._interval_with_redis)
            await asyncio.sleep(interval)

    def _apply_message(self, data: Any) -> None:
        try:
            event = json.loads(data)
        except (TypeError, ValueError):
            self._metrics.revocation_feed_failed()
            return
        if isinstance(event, dict) and self.denylist.apply(event):
            self._metrics.revocations_applied("redis", 1)
            self._save_soon()
        else:
            self._metrics.revocation_feed_failed()

    async def _subscribe_loop(self) -> None:
        # Imported here, not at the top: redis is needed only when a Redis URL is configured,
        # and `import shared.revocation_feed` must not require it.
        import redis.asyncio as redis

        assert self._redis_url is not None
        backoff = 0.5
        while True:
            client = redis.Redis.from_url(self._redis_url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    self.redis_connected = True
                    backoff = 0.5
                    # Anything published while we were away is in the feed: read it now.
                    with contextlib.suppress(Exception):
                        await self.poll_once()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._apply_message(message.get("data"))
            except asyncio.CancelledError:
                self.redis_connected = False
                raise
            except Exception as exc:
                self.redis_connected = False
                self._metrics.revocation_feed_failed()
                log.warning("revocation channel lost (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                # Capped low: while Redis is away, events arrive by polling (slower), so being
                # back on the channel soon after Redis is matters more than sparing it a
                # reconnect attempt every two seconds.
                backoff = min(backoff * 2, 2)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()


__all__ = ["RevocationFeedClient", "revocation_channel"]
