"""the identity provider: clients with redirect URIs, browser and child sessions, authorization
codes, login flows and consents

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("redirect_uris", sa.Text(), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("post_logout_redirect_uris", sa.Text(), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("first_party", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("native", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # The seeded clients are first-party (contract §8.1); `web-page`'s grants and redirect URIs
    # are set from AUTH_CORS_ORIGINS by auth_server.provision after every migration.
    op.execute("UPDATE clients SET first_party = true WHERE id IN ('web', 'web-page')")

    with op.batch_alter_table("sessions", schema=None) as batch_op:
        # A browser session belongs to no client; its children each belong to one.
        batch_op.alter_column("client_id", existing_type=sa.String(length=128), nullable=True)
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="client")
        )
        batch_op.add_column(sa.Column("parent_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("secret_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("auth_time", TIMESTAMP, nullable=True))
        batch_op.add_column(sa.Column("amr", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("acr", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_sessions_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sessions_secret_hash"), ["secret_hash"], unique=True)

    op.create_table(
        "login_flows",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("binding_hash", sa.String(length=64), nullable=False),
        sa.Column("request", sa.JSON(), nullable=True),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("amr", sa.String(length=64), nullable=True),
        sa.Column("attempt", sa.JSON(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_flows")),
    )
    with op.batch_alter_table("login_flows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_flows_expires_at"), ["expires_at"])

    op.create_table(
        "authorization_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("browser_session_id", sa.String(length=64), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(length=128), nullable=True),
        sa.Column("nonce", sa.Text(), nullable=True),
        sa.Column("resource", sa.Text(), nullable=True),
        sa.Column("auth_time", TIMESTAMP, nullable=False),
        sa.Column("amr", sa.String(length=64), nullable=False),
        sa.Column("acr", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("used_at", TIMESTAMP, nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_authorization_codes")),
    )
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_authorization_codes_expires_at"), ["expires_at"])

    op.create_table(
        "consents",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_consents_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_consents_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "client_id", name=op.f("pk_consents")),
    )


def downgrade() -> None:
    op.drop_table("consents")
    op.drop_table("authorization_codes")
    op.drop_table("login_flows")
    op.execute("DELETE FROM sessions WHERE client_id IS NULL")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_secret_hash"))
        batch_op.drop_index(batch_op.f("ix_sessions_parent_id"))
        for column in ("acr", "amr", "auth_time", "secret_hash", "parent_id", "kind"):
            batch_op.drop_column(column)
        batch_op.alter_column("client_id", existing_type=sa.String(length=128), nullable=False)
    with op.batch_alter_table("clients", schema=None) as batch_op:
        for column in ("native", "first_party", "post_logout_redirect_uris", "redirect_uris"):
            batch_op.drop_column(column)
