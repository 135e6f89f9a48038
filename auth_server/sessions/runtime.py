"""Background work of the sessions feature (sweeper, revocation publishing). Filled in by issue 4."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from auth_server.context import AuthContext


async def start_background(ctx: AuthContext) -> Callable[[], Awaitable[None]]:
    """Start the background tasks; returns the coroutine function that stops them."""

    async def stop() -> None:
        return None

    return stop
