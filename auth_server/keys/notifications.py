"""Telling every running replica at once that the signing keys changed (Redis pub/sub).

`keys rotate [--emergency]` runs in another process than the servers. With Redis configured it
publishes on this channel after its commit, and every replica reloads its keys within
milliseconds. Without Redis (or while the subscription is down) a replica checks the state of
its signing key in the database on every token it signs instead (KeyStore.signing_key).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("auth_server.keys.notifications")


def key_change_channel(prefix: str) -> str:
    return f"{prefix}:keys"


class KeyChangeChannel:
    def __init__(self, redis: Any, channel: str) -> None:
        self._redis = redis  # redis.asyncio.Redis
        self.channel = channel

    async def publish(self) -> None:
        """Best effort: a replica that misses it still checks its key on the signing path."""
        try:
            await self._redis.publish(self.channel, "changed")
        except Exception as exc:
            log.warning("could not publish a key change on Redis: %s", exc)

    async def listen(
        self,
        on_change: Callable[[], Awaitable[None]],
        on_connected: Callable[[bool], None],
    ) -> None:
        """Call `on_change` for every message, and once after every (re)subscription (a change
        may have been missed meanwhile); `on_connected` follows the subscription's health."""
        backoff = 0.5
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    await on_change()
                    on_connected(True)
                    backoff = 0.5
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await on_change()
            except asyncio.CancelledError:
                on_connected(False)
                raise
            except Exception as exc:
                on_connected(False)
                log.warning("key change channel lost (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)


__all__ = ["KeyChangeChannel", "key_change_channel"]
