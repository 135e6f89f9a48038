"""the page's client keeps its refresh token in a cookie; the web client may ask for `admin`

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("refresh_in_cookie", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # The `admin` scope is granted only to admins who ask for it by name, and only through
    # clients allowed it; the public `web` client is (the page's own client is created by
    # auth_server.provision, with the notes scopes only).
    op.execute(
        "UPDATE clients SET scopes = scopes || ' admin' "
        "WHERE id = 'web' AND ' ' || scopes || ' ' NOT LIKE '% admin %'"
    )


def downgrade() -> None:
    op.execute("UPDATE clients SET scopes = REPLACE(scopes, ' admin', '') WHERE id = 'web'")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("refresh_in_cookie")
