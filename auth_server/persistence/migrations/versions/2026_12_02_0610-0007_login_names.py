"""one login name per account: usernames and emails in one unique namespace

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 06:10:00

Until now a username was compared with usernames and an email with emails, and a login matched
either, returning whichever row came first: `victim@example.com` could be someone else's
username (issue 16). `login_names` holds every account's username and email in one canonical
form (NFKC and case folding), unique across both kinds.

Rows that already collide are never changed: the users table stays as it is. Each shared name
is given to one account in `login_names` (an email before a username, since an email names a
mailbox its owner receives and a username that looks like one does not; among equals, the
oldest account), and the migration logs a warning naming how many names were shared and the
ids of the accounts involved. An account that lost a name still logs in with its other one; an
operator settles the rest (docs/security/index.md, "One login string, one account").
"""

import logging
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

LOGIN_KEY_MAX = 320


def login_key(raw: str) -> str:
    """auth_server.users.normalize.login_key as of this revision (a migration keeps its own
    copy: the code it was written against may change)."""
    name = unicodedata.normalize("NFKC", raw).strip()
    for _ in range(3):
        folded = unicodedata.normalize("NFKC", name.casefold()).strip()
        if folded == name:
            break
        name = folded
    return name


def upgrade() -> None:
    op.create_table(
        "login_names",
        sa.Column("name", sa.String(length=LOGIN_KEY_MAX), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_login_names_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_login_names")),
    )
    with op.batch_alter_table("login_names", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_names_user_id"), ["user_id"], unique=False)

    bind = op.get_bind()
    users = bind.execute(sa.text("SELECT id, username, email, created_at FROM users")).all()
    # name -> every claim on it: (0 for an email, 1 for a username; created_at; user id; kind)
    claims: dict[str, list[tuple[int, Any, str, str]]] = defaultdict(list)
    too_long: list[str] = []
    for user_id, username, email, created_at in users:
        names = {login_key(username): "username"}
        names.setdefault(login_key(email), "email")
        for name, kind in names.items():
            if len(name) > LOGIN_KEY_MAX:
                too_long.append(user_id)
                continue
            claims[name].append((0 if kind == "email" else 1, str(created_at), user_id, kind))
    rows = []
    shared: list[tuple[str, list[str]]] = []
    for name, claimants in claims.items():
        winner = min(claimants)
        rows.append({"name": name, "user_id": winner[2], "kind": winner[3]})
        others = sorted({c[2] for c in claimants} - {winner[2]})
        if others:
            shared.append((winner[2], others))
    if rows:
        op.bulk_insert(
            sa.table("login_names", sa.column("name"), sa.column("user_id"), sa.column("kind")),
            rows,
        )
    if shared:
        accounts = sorted({user for kept, lost in shared for user in (kept, *lost)})
        log.warning(
            "%d login names were shared by more than one account (%d accounts: %s); each now "
            "names one account (an email before a username, then the oldest account), and the "
            "users table is unchanged. Kept by -> no longer naming: %s",
            len(shared),
            len(accounts),
            ", ".join(accounts),
            "; ".join(f"{kept} -> {', '.join(lost)}" for kept, lost in shared),
        )
    if too_long:
        log.warning(
            "%d login names are longer than %d characters in canonical form and name no "
            "account (users: %s)",
            len(too_long),
            LOGIN_KEY_MAX,
            ", ".join(sorted(too_long)),
        )


def downgrade() -> None:
    with op.batch_alter_table("login_names", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_names_user_id"))
    op.drop_table("login_names")
