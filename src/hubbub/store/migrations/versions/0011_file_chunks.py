"""File bytes in the database: ``file_blobs`` (one row per complete file) and ``file_chunks``.

Used by the database file store (``--files database``, the default with PostgreSQL), so every
node on the same database serves every upload. Created on SQLite too (migrations run on both,
and the tables cost nothing there), where the local disk store stays the default.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "file_blobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("chunk_bytes", sa.Integer, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "file_chunks",
        sa.Column("file_id", sa.String(32), primary_key=True),
        sa.Column("n", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Uploads are mostly compressed already (images, archives): store the chunks out of
        # line without trying to compress them again.
        op.execute("ALTER TABLE file_chunks ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("file_chunks")
    op.drop_table("file_blobs")
