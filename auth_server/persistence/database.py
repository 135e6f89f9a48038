"""The auth database: engine construction and migrations."""

from __future__ import annotations

from pathlib import Path

from shared.db import alembic_upgrade

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(database_url: str) -> None:
    """`alembic upgrade head` for the auth database (blocking). Seeds the public `web` client."""
    alembic_upgrade(MIGRATIONS, database_url)
