"""Background work of the auth server: the sweeper and the key rotation schedule."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from auth_server.context import AuthContext
from auth_server.keys.rotation import run_rotation_schedule
from auth_server.sessions.sweeper import run_sweeper


async def start_background(ctx: AuthContext) -> Callable[[], Awaitable[None]]:
    """Start the background tasks; returns the coroutine function that stops them."""
    stop_event = asyncio.Event()
    tasks = [
        asyncio.create_task(
            run_sweeper(ctx.session_maker, ctx.settings, stop=stop_event), name="sweeper"
        ),
        asyncio.create_task(
            run_rotation_schedule(ctx.keys, ctx.settings, stop=stop_event), name="key-rotation"
        ),
    ]

    async def stop() -> None:
        stop_event.set()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=5)

    return stop
