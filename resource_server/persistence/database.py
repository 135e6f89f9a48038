"""The resource database: migrations."""

from __future__ import annotations

from pathlib import Path

from shared.service.db import alembic_upgrade

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(database_url: str) -> None:
    """`alembic upgrade head` for the resource database (blocking)."""
    alembic_upgrade(MIGRATIONS, database_url)
