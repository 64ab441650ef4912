"""The change log: every stored change after a message is one row, so resume covers it.

Each room gets a second counter, ``last_rev``, that every stored event of the room takes a
number from — messages (``messages.rev``) and changes (``changes.rev``) alike — so one
per-room order covers both and a hole in it is found and repaired like a hole in ``seq``.
Every stored event also takes a stream position from the shared counter (``gseq`` for
messages, ``changes.position``), which orders ``/chat/events``. Personal changes (a room added
to or removed from a user, their own read moves) are rows with ``room_id = '@<user>'`` and no
``rev``.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rooms") as batch:
        batch.add_column(sa.Column("last_rev", sa.BigInteger, nullable=False, server_default="0"))
    op.execute("UPDATE rooms SET last_rev = last_seq")
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("rev", sa.BigInteger, nullable=True))
    op.execute("UPDATE messages SET rev = seq")
    op.create_index("ix_messages_room_rev", "messages", ["room_id", "rev"], unique=True)
    op.create_table(
        "changes",
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("room_id", sa.String(65), nullable=False),
        sa.Column("rev", sa.BigInteger, nullable=True),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("ref", sa.String(64), nullable=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_changes_room_rev", "changes", ["room_id", "rev"])


def downgrade() -> None:
    op.drop_index("ix_changes_room_rev", "changes")
    op.drop_table("changes")
    op.drop_index("ix_messages_room_rev", "messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("rev")
    with op.batch_alter_table("rooms") as batch:
        batch.drop_column("last_rev")
