"""Password hashing: Argon2id (pwdlib), in a bounded pool of worker threads, never on the
event loop.

At most AUTH_PASSWORD_HASH_CONCURRENCY hashes run at once (one per core by default) and at most
AUTH_PASSWORD_HASH_QUEUE more wait; past that a login is refused at once (HashingBusy: 503 with
Retry-After) rather than queued without bound. A login storm then costs those logins, not the
event loop's latency for everything else (health checks, JWKS, refreshes).

The hashing threads also run at a lower CPU priority than the rest of the process (Linux keeps
a nice value per thread, and Argon2's own threads inherit it): when the event loop has work, the
kernel runs it first, and when it has none the hashes get every core. No library sets a
thread's priority; on a system without per-thread nice values the threads simply run at the
process's own priority.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from auth_server.settings import AuthSettings

T = TypeVar("T")

# Niceness added to each hashing thread. At 10, a thread weighs about a tenth of the event
# loop's thread with the kernel's fair scheduler (sched(7)).
HASHING_NICENESS = 10


def _lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        os.setpriority(
            os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + HASHING_NICENESS
        )


class HashingBusy(Exception):
    """Every hashing slot is taken and the queue is full: try again in `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("password hashing is at capacity")
        self.retry_after = retry_after


class PasswordHasher:
    def __init__(self, settings: AuthSettings) -> None:
        self._hash = PasswordHash(
            (
                Argon2Hasher(
                    time_cost=settings.password_hash_time_cost,
                    memory_cost=settings.password_hash_memory_cost,
                    parallelism=settings.password_hash_parallelism,
                ),
            )
        )
        self._pool = ThreadPoolExecutor(
            settings.password_hash_concurrency,
            thread_name_prefix="argon2",
            initializer=_lower_priority,
        )
        self._capacity = settings.password_hash_concurrency + settings.password_hash_queue
        self._in_flight = 0
        self._retry_after = settings.retry_after
        # Verified against when the user is unknown, so that "unknown user" costs the same time
        # as "wrong password" (made once, with the current parameters).
        self._dummy = self._hash.hash("dummy password that never matches anything")

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def check_capacity(self) -> None:
        """HashingBusy now if a hash asked for now would be refused: lets a caller refuse
        before it does any other work (a storm of refused logins must stay cheap)."""
        if self._in_flight >= self._capacity:
            raise HashingBusy(self._retry_after)

    async def _run(self, function: Callable[..., T], *args: str) -> T:
        self.check_capacity()
        self._in_flight += 1
        job = asyncio.get_running_loop().run_in_executor(self._pool, function, *args)
        # Counted until the hash is done, even when the request that asked is cancelled.
        job.add_done_callback(self._done)
        return await asyncio.shield(job)

    def _done(self, job: asyncio.Future[Any]) -> None:
        self._in_flight -= 1
        if not job.cancelled():
            job.exception()  # retrieved, also when nobody awaits it any more (no warning)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def hash(self, password: str) -> str:
        return await self._run(self._hash.hash, password)

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """(matches, a new hash when the parameters changed). `stored=None` burns the same time.
        HashingBusy when the pool is full."""
        if stored is None:
            await self._run(self._hash.verify, password, self._dummy)
            return False, None
        try:
            return await self._run(self._hash.verify_and_update, password, stored)
        except HashingBusy:
            raise
        except Exception:  # a corrupt stored hash is a failed login, not a 500
            return False, None
