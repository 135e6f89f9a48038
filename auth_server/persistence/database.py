"""The auth database's schema: Alembic migrations (seeding happens in auth_server.provision)."""

from __future__ import annotations

from pathlib import Path

from shared.service.db import alembic_upgrade

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate_schema(database_url: str) -> None:
    """`alembic upgrade head` for the auth database (blocking)."""
    alembic_upgrade(MIGRATIONS, database_url)
