"""at most one active and one next signing key

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for state in ("active", "next"):
        op.create_index(
            f"uq_signing_keys_one_{state}",
            "signing_keys",
            ["state"],
            unique=True,
            sqlite_where=sa.text(f"state = '{state}'"),
            postgresql_where=sa.text(f"state = '{state}'"),
        )


def downgrade() -> None:
    for state in ("active", "next"):
        op.drop_index(f"uq_signing_keys_one_{state}", table_name="signing_keys")
