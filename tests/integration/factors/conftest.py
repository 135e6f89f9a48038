"""Fixtures for the factor tests: the auth server's running parts (AuthState) with a clock the
test moves, on SQLite and PostgreSQL, and a user to enrol."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from auth_server.factors.actor import Actor
from auth_server.settings import AuthSettings
from auth_server.state import AuthState
from auth_server.users.service import new_user, register
from shared.service.db import transaction

T = TypeVar("T")
PASSWORD = "correct horse battery staple 42"
ACTOR = Actor(ip="192.0.2.10", user_agent="factor-tests", session_id=None)


class Clock:
    """Epoch seconds a test moves by hand; starts at the beginning of a TOTP step (+1 s), so
    that a test knows which step "now" is in."""

    def __init__(self) -> None:
        self.now = float(int(time.time() // 30) * 30 + 1)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now, dt.UTC)


@dataclass
class Harness:
    state: AuthState
    clock: Clock

    async def run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """One unit of work, committed whether it returns or raises (as a route's answer is)."""
        async with self.state.session_maker() as db:
            try:
                result = await work(db)
            except BaseException:
                await db.commit()
                raise
            await db.commit()
            return result

    async def user(self, name: str | None = None) -> str:
        name = name or f"user{secrets.token_hex(4)}"
        async with transaction(self.state.session_maker) as db:
            user = await register(
                db,
                self.state.passwords,
                new_user(username=name, email=f"{name}@example.com", password=PASSWORD),
            )
        return user.id

    @property
    def fresh(self) -> float:
        """An auth_time of a sign-in a moment ago."""
        return self.clock.now - 5


@pytest.fixture
def factor_settings(auth_settings: AuthSettings) -> AuthSettings:
    return auth_settings.model_copy(update={"issuer": "http://localhost:8000"})


@pytest.fixture
async def harness(factor_settings: AuthSettings) -> AsyncIterator[Harness]:
    clock = Clock()
    state = await AuthState.open(factor_settings, clock=clock)
    try:
        yield Harness(state, clock)
    finally:
        await state.aclose()


async def open_harness(settings: AuthSettings) -> Harness:
    clock = Clock()
    return Harness(await AuthState.open(settings, clock=clock), clock)
