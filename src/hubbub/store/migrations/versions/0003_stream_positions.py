"""Stream positions: one counter across all rooms, so /chat/events has a single cursor.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("gseq", sa.BigInteger, nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("UPDATE messages SET gseq = rowid")
    else:
        op.execute(
            "UPDATE messages SET gseq = ordered.n FROM (SELECT id, row_number() OVER "
            "(ORDER BY created_at, room_id, seq) AS n FROM messages) AS ordered "
            "WHERE messages.id = ordered.id"
        )
    op.create_index("ix_messages_gseq", "messages", ["gseq"], unique=True)
    op.execute(
        "INSERT INTO counters (name, value) SELECT 'messages', COALESCE(MAX(gseq), 0) FROM messages"
    )


def downgrade() -> None:
    op.drop_index("ix_messages_gseq", "messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("gseq")
    op.drop_table("counters")
