"""Bringing a database up to date: the Alembic migrations, then the seeded clients (and, when
asked, the first signing keys). `auth-server migrate` and `serve` run this; so do the tests when
they build their template databases."""

from __future__ import annotations

import asyncio

from auth_server.keys.store import KeyStore
from auth_server.oauth.clients import ensure_seeded_clients
from auth_server.persistence.database import migrate_schema
from auth_server.settings import AuthSettings
from shared.service.db import create_engine, create_session_maker, transaction


async def seed(settings: AuthSettings, *, signing_keys: bool = False) -> None:
    """Create the seeded clients that are absent, and with `signing_keys` an active and a next
    key (the server makes them on start too)."""
    engine = create_engine(settings.database_url)
    try:
        session_maker = create_session_maker(engine)
        async with transaction(session_maker) as db:
            await ensure_seeded_clients(db, settings.cors_origins)
        if signing_keys:
            await KeyStore(session_maker, settings).ensure_keys()
    finally:
        await engine.dispose()


def migrate(settings: AuthSettings, *, signing_keys: bool = False) -> None:
    """Migrate and seed (blocking: it runs its own event loops)."""
    migrate_schema(settings.database_url)
    asyncio.run(seed(settings, signing_keys=signing_keys))


__all__ = ["migrate", "seed"]
