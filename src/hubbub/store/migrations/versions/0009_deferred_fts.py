"""SQLite's full-text index is filled behind the send path, in large batches, not by a trigger
inside every send's transaction.

Measured on the send path (16 messages per commit): the ``AFTER INSERT`` trigger into
``messages_fts`` was about half the writer's CPU per message (~68 of ~130 µs), because FTS5
writes a new segment, and merges, once per transaction; the same rows indexed 1,000 at a time
cost ~8 µs each. ``messages_fts_progress.upto`` is the last ``gseq`` indexed; rows past it are
indexed by ``store/sql/fts_index.py`` (before every search, and about once a second after
sends). The edit and delete triggers keep the index exact for rows already in it and leave the
others to the catch-up, which indexes their current text.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_INDEXED = "(old.gseq IS NULL OR old.gseq <= (SELECT upto FROM messages_fts_progress))"
_UNINDEX = (
    "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text); "
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL's GIN index is the table's own, maintained by the server
    op.execute(
        "CREATE TABLE messages_fts_progress ("
        "id INTEGER PRIMARY KEY CHECK (id = 1), upto BIGINT NOT NULL)"
    )
    op.execute(
        "INSERT INTO messages_fts_progress (id, upto) "
        "SELECT 1, COALESCE(MAX(gseq), 0) FROM messages"
    )
    for name in ("messages_fts_ai", "messages_fts_ad", "messages_fts_au"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute(
        f"CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages WHEN {_INDEXED} BEGIN "
        f"{_UNINDEX}END"
    )
    op.execute(
        f"CREATE TRIGGER messages_fts_au AFTER UPDATE OF text ON messages WHEN {_INDEXED} BEGIN "
        f"{_UNINDEX}INSERT INTO messages_fts(rowid, text) VALUES (new.rowid, new.text); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in ("messages_fts_ad", "messages_fts_au"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute(
        "CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN "
        "INSERT INTO messages_fts(rowid, text) VALUES (new.rowid, new.text); END"
    )
    op.execute(f"CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN {_UNINDEX}END")
    op.execute(
        "CREATE TRIGGER messages_fts_au AFTER UPDATE OF text ON messages BEGIN "
        f"{_UNINDEX}INSERT INTO messages_fts(rowid, text) VALUES (new.rowid, new.text); END"
    )
    op.execute("DROP TABLE messages_fts_progress")
    op.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
