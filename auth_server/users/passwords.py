"""Password hashing: Argon2id (pwdlib), always in a worker thread, never on the event loop."""

from __future__ import annotations

import anyio.to_thread
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from auth_server.settings import AuthSettings


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
        # Verified against when the user is unknown, so that "unknown user" costs the same time
        # as "wrong password" (made once, with the current parameters).
        self._dummy = self._hash.hash("dummy password that never matches anything")

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hash.hash, password)

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """(matches, a new hash when the parameters changed). `stored=None` burns the same time."""
        if stored is None:
            await anyio.to_thread.run_sync(self._hash.verify, password, self._dummy)
            return False, None
        try:
            return await anyio.to_thread.run_sync(self._hash.verify_and_update, password, stored)
        except Exception:  # a corrupt stored hash is a failed login, not a 500
            return False, None
