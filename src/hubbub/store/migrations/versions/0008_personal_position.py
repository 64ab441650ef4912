"""``ix_changes_room_position``: the newest entry of one channel by one index seek.

A fresh ``/chat/events`` stream starts at the newest position its caller can see (so its
cursor says nothing about rooms the caller cannot read); for the caller's personal channel
(``@user``, whose entries have no ``rev``) that is ``max(position)`` of the channel.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_changes_room_position", "changes", ["room_id", "position"])


def downgrade() -> None:
    op.drop_index("ix_changes_room_position", "changes")
