"""The hashing pool: bounded, counted until each hash is done, and below the event loop's CPU
priority."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

import pytest

from auth_server.settings import AuthSettings
from auth_server.users.passwords import HASHING_NICENESS, HashingBusy, PasswordHasher
from tests.databases import TEST_KEK


def fast_settings(**overrides: int) -> AuthSettings:
    """Test settings with cheap Argon2 costs; the pool's bounds from `overrides` or defaults."""
    return AuthSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url="sqlite+aiosqlite:///:memory:",
        key_encryption_key=TEST_KEK,
        password_hash_time_cost=1,
        password_hash_memory_cost=1024,
        password_hash_parallelism=1,
        **overrides,
    )


def hasher(concurrency: int = 1, queue: int = 0) -> PasswordHasher:
    return PasswordHasher(
        fast_settings(password_hash_concurrency=concurrency, password_hash_queue=queue)
    )


def slowed(h: PasswordHasher, seconds: float) -> None:
    fast = h._hash.verify_and_update

    def slow(password: str, stored: str) -> tuple[bool, str | None]:
        time.sleep(seconds)
        return fast(password, stored)

    h._hash.verify_and_update = slow  # type: ignore[method-assign]


async def test_a_hash_stays_counted_until_done_when_its_request_is_cancelled() -> None:
    h = hasher(concurrency=1, queue=0)
    try:
        stored = await h.hash("correct horse battery staple")
        slowed(h, 0.4)
        request = asyncio.create_task(h.verify("correct horse battery staple", stored))
        await asyncio.sleep(0.1)
        request.cancel()  # the client went away; the thread still hashes
        with pytest.raises(asyncio.CancelledError):
            await request
        assert h.in_flight == 1
        with pytest.raises(HashingBusy):  # the slot is still taken: no unbounded pile-up
            await h.verify("correct horse battery staple", stored)
        await asyncio.sleep(0.5)
        assert h.in_flight == 0
        assert await h.verify("correct horse battery staple", stored) == (True, None)
    finally:
        h.close()


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
async def test_hashing_threads_run_below_the_event_loops_priority() -> None:
    h = hasher(concurrency=2)
    try:
        await asyncio.gather(h.hash("one password here"), h.hash("another password"))
        ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        hashing = [t for t in threading.enumerate() if t.name.startswith("argon2")]
        assert hashing
        for thread in hashing:
            assert thread.native_id is not None
            niceness = os.getpriority(os.PRIO_PROCESS, thread.native_id)
            assert niceness == min(19, ours + HASHING_NICENESS), (thread.name, niceness)
    finally:
        h.close()


def test_by_default_a_storm_of_a_few_dozen_logins_per_worker_waits_rather_than_being_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The default queue holds 16 logins per core: a 16-way storm on a 1-core machine is queued
    (answered within about 16 hash times), the 18th concurrent login is refused at once."""
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    settings = fast_settings()
    assert (settings.password_hash_concurrency, settings.password_hash_queue) == (1, 16)

    async def storm() -> list[bool]:
        h = PasswordHasher(settings)
        slowed(h, 0.05)
        stored = await h.hash("pw")

        async def one() -> bool:
            try:
                await h.verify("pw", stored)
            except HashingBusy:
                return False
            return True

        try:
            return await asyncio.gather(*(one() for _ in range(18)))
        finally:
            h.close()

    answers = asyncio.run(storm())
    assert answers.count(True) == 17 and answers.count(False) == 1
