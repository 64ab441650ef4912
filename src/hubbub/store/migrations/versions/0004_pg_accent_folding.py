"""PostgreSQL search ignores accents, like SQLite's (``unaccent`` when the server has it).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FOLD_WITH_UNACCENT = (
    "CREATE OR REPLACE FUNCTION hubbub_fold(text) RETURNS text LANGUAGE sql IMMUTABLE "
    "PARALLEL SAFE STRICT AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$"
)
FOLD_PLAIN = (
    "CREATE OR REPLACE FUNCTION hubbub_fold(text) RETURNS text LANGUAGE sql IMMUTABLE "
    "PARALLEL SAFE STRICT AS $$ SELECT $1 $$"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    folded = False
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'unaccent'")
    ).first()
    if available:
        savepoint = bind.begin_nested()
        try:
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public"))
            bind.execute(sa.text(FOLD_WITH_UNACCENT))
            savepoint.commit()
            folded = True
        except sa.exc.DBAPIError:  # no privilege to create extensions: search keeps accents
            savepoint.rollback()
    if not folded:
        op.execute(FOLD_PLAIN)
    op.execute("DROP INDEX IF EXISTS ix_messages_fts")
    op.execute(
        "CREATE INDEX ix_messages_fts ON messages "
        "USING gin (to_tsvector('simple', hubbub_fold(text)))"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_messages_fts")
    op.execute("CREATE INDEX ix_messages_fts ON messages USING gin (to_tsvector('simple', text))")
    op.execute("DROP FUNCTION IF EXISTS hubbub_fold(text)")
