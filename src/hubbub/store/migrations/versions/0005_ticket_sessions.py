"""Tickets remember the session that asked for them, so a ticket dies with its session.

Tickets live for seconds, so the ones in flight during the upgrade are simply dropped (their
holders ask for a new one). ``ix_sessions_user`` serves "end every other session of this user"
(a password change).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("session_id", sa.String(64), nullable=True))
        batch.create_foreign_key("fk_tickets_session", "sessions", ["session_id"], ["id"])
    op.create_index("ix_sessions_user", "sessions", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_sessions_user", "sessions")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("fk_tickets_session", type_="foreignkey")
        batch.drop_column("session_id")
