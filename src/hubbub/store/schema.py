"""Tables, in SQL that SQLite and PostgreSQL both run. Migrations in ``migrations/`` create them."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    # hubbub.auth.names.username_key for accounts with a password (migration 0007)
    sa.Column("username_key", sa.String(128), nullable=True, unique=True),
    sa.Column("password_hash", sa.Text, nullable=True),
    sa.Column("created_at", sa.String(32), nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_sessions_user", "user_id"),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("used", sa.Boolean, nullable=False, server_default=sa.false()),
)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("ticket_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    # The session that asked for the ticket: the ticket dies with it. None only for an
    # identity without a session (a token without ``sid``).
    sa.Column(
        "session_id",
        sa.String(64),
        sa.ForeignKey("sessions.id", name="fk_tickets_session"),
        nullable=True,
    ),
)

rooms = sa.Table(
    "rooms",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("visibility", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_rev", sa.BigInteger, nullable=False, server_default="0"),
)

members = sa.Table(
    "members",
    metadata,
    sa.Column("room_id", sa.String(64), sa.ForeignKey("rooms.id"), primary_key=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("joined_at", sa.String(32), nullable=False),
    sa.Column("last_read_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_members_user", "user_id"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("room_id", sa.String(64), sa.ForeignKey("rooms.id"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("client_ts", sa.Text, nullable=True),
    sa.Column("client_msg_id", sa.String(128), nullable=True),
    sa.Column("edited_at", sa.String(32), nullable=True),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("file", sa.Text, nullable=True),
    sa.Column("gseq", sa.BigInteger, nullable=True),
    sa.Column("rev", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("room_id", "seq", name="uq_messages_room_seq"),
    sa.UniqueConstraint("user_id", "client_msg_id", name="uq_messages_user_cmid"),
)

reactions = sa.Table(
    "reactions",
    metadata,
    sa.Column("message_id", sa.String(64), sa.ForeignKey("messages.id"), primary_key=True),
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("reaction", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.String(32), nullable=False),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("room_id", sa.String(64), sa.ForeignKey("rooms.id"), nullable=False),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content_type", sa.String(128), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Index("ix_files_room", "room_id"),
)

counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

changes = sa.Table(
    "changes",
    metadata,
    sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("room_id", sa.String(65), nullable=False),  # a room, or "@<user>" (personal)
    sa.Column("rev", sa.BigInteger, nullable=True),  # the room's order; None when personal
    sa.Column("name", sa.String(32), nullable=False),  # the event name streamed
    sa.Column("ref", sa.String(64), nullable=True),  # what changed (a message id), for folding
    sa.Column("data", sa.Text, nullable=False),  # the event's JSON, exactly as streamed
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Index("ix_changes_room_rev", "room_id", "rev"),
)

# The bytes of uploaded files when they live in the database (``--files database``, the default
# with PostgreSQL; ``hubbub/files/postgres.py``): one ``file_blobs`` row per complete file,
# written last in the upload's transaction, and its bytes in ordered chunks.
file_blobs = sa.Table(
    "file_blobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("chunk_bytes", sa.Integer, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)

file_chunks = sa.Table(
    "file_chunks",
    metadata,
    sa.Column("file_id", sa.String(32), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
