"""Usernames are unique regardless of case and Unicode form: ``users.username_key``.

Every account that can sign in (it has a password) gets the key of its name
(``hubbub.auth.names.username_key``), under a unique index. Databases from before this may hold
two accounts whose names now share a key (``Alice`` and ``alice``): the older account takes the
key; the newer keeps its name, its password and its sign-in by the exact name it registered
with, but has no key (NULL, which the index allows many of), so nobody can register a third
spelling and nobody loses an account. Trust-mode users (no password) have no key either: they
are ids, and an account registered later may take their name's key.

Revision ID: 0007
Revises: 0006
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _key(name: str) -> str:
    # hubbub.auth.names.username_key, frozen here: a migration must not change with the code.
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("username_key", sa.String(128), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT id, username FROM users WHERE password_hash IS NOT NULL ORDER BY created_at, id"
        )
    ).all()
    taken: set[str] = set()
    for user_id, username in rows:
        key = _key(username)
        if key in taken:
            continue
        taken.add(key)
        conn.execute(
            sa.text("UPDATE users SET username_key = :key WHERE id = :id"),
            {"key": key, "id": user_id},
        )
    op.create_index("ix_users_username_key", "users", ["username_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_users_username_key", "users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("username_key")
