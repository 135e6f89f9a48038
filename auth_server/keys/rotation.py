"""The scheduled rotation (AUTH_KEY_ROTATION_DAYS), run by every replica's lifespan.

Replicas racing to rotate are safe: the promotion is a conditional update, so exactly one wins
and the others get RotationRefused, which is expected and logged at debug level.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

from auth_server.keys.store import KeyStore, RotationRefused
from auth_server.settings import AuthSettings

log = logging.getLogger("auth_server.keys.rotation")


async def rotate_if_due(store: KeyStore, settings: AuthSettings) -> bool:
    await store.retire_expired()
    if settings.key_rotation_days <= 0:
        return False
    age = await store.active_key_age()
    if age is None or age < dt.timedelta(days=settings.key_rotation_days):
        return False
    try:
        await store.rotate()
    except RotationRefused as exc:
        log.debug("scheduled rotation skipped: %s", exc)
        return False
    return True


async def run_rotation_schedule(
    store: KeyStore, settings: AuthSettings, *, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await rotate_if_due(store, settings)
        except Exception:  # the schedule must outlive a database hiccup
            log.exception("scheduled key rotation failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.key_rotation_check_interval)
