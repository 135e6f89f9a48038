"""one feed row per revoked access token

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 06:00:00

Revoking an access token again used to add another feed row for the same `jti` (issue 16: 60 rows
for one token). The copies say nothing the first one doesn't: they are merged into it (the
earliest row stays, with the latest expiry of the copies) before the unique index is built.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    bind = op.get_bind()
    duplicated = bind.execute(
        sa.text(
            "SELECT value, min(id), max(expires_at) FROM revocations WHERE kind = 'jti' "
            "GROUP BY value HAVING count(*) > 1"
        )
    ).all()
    removed = 0
    for value, first_id, latest in duplicated:
        bind.execute(
            sa.text("UPDATE revocations SET expires_at = :latest WHERE id = :id"),
            {"latest": latest, "id": first_id},
        )
        removed += bind.execute(
            sa.text("DELETE FROM revocations WHERE kind = 'jti' AND value = :value AND id <> :id"),
            {"value": value, "id": first_id},
        ).rowcount
    if removed:
        log.warning(
            "merged %d duplicate feed rows of %d revoked access tokens", removed, len(duplicated)
        )
    op.create_index(
        "uq_revocations_jti",
        "revocations",
        ["value"],
        unique=True,
        sqlite_where=sa.text("kind = 'jti'"),
        postgresql_where=sa.text("kind = 'jti'"),
    )


def downgrade() -> None:
    op.drop_index("uq_revocations_jti", table_name="revocations")
