"""The webhook delivery cursor: the last change-log position delivered, per webhook URL.

The pending deliveries themselves need no table: they are the change log past this position,
written in the same transaction as each change (see ``hubbub/webhooks/outbox.py``).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_cursors",
        sa.Column("endpoint", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_cursors")
