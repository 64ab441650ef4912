"""The send path's statements, written twice: plain SQL on the ``sqlite3`` driver, and
SQLAlchemy Core for PostgreSQL. ``append.py`` holds the batch's rules and calls these.

Why twice: a send batch runs 6-8 statements in the one writer thread, and SQLAlchemy's work per
statement (cache-key generation, parameter processing, the execution context, result rows)
measured more CPU than SQLite's own work for the statement. On SQLite the send path therefore
talks to the driver directly with precompiled ``?`` statements and one ``executemany`` per kind
of statement (SQLite caches the prepared statements per connection). PostgreSQL keeps the
SQLAlchemy statements (there the round trip to the server is the larger cost).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa
from sqlalchemy import Connection

from hubbub.changes import Change
from hubbub.models import Message
from hubbub.store.changelog import insert_changes, take_positions
from hubbub.store.schema import members, messages, rooms
from hubbub.store.sql.engine import Database
from hubbub.store.sql.rows import READ_UP_TO, SET_HEAD, ensure_users, message_of

MESSAGE_COLUMNS = (
    "gseq",
    "rev",
    "id",
    "room_id",
    "seq",
    "user_id",
    "username",
    "type",
    "text",
    "created_at",
    "client_ts",
    "client_msg_id",
    "edited_at",
    "deleted",
    "file",
)


class RoomRow(NamedTuple):
    id: str
    name: str
    visibility: str
    created_by: str | None
    created_at: str
    last_seq: int
    last_rev: int


class MessageRow(NamedTuple):
    gseq: int | None
    rev: int | None
    id: str
    room_id: str
    seq: int
    user_id: str
    username: str
    type: str
    text: str
    created_at: str
    client_ts: str | None
    client_msg_id: str | None
    edited_at: str | None
    deleted: bool
    file: str | None


class BatchSql(Protocol):
    """The statements of one send batch, run in the caller's write transaction."""

    def ensure_users(self, user_ids: Sequence[str], now: str) -> None: ...
    def lock_rooms(self, room_ids: Sequence[str]) -> list[RoomRow]: ...
    def create_rooms(self, rows: Sequence[tuple[str, str]], now: str) -> None: ...
    def add_members(self, rows: Sequence[tuple[str, str, str]], now: str) -> None: ...
    def memberships(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]: ...
    def stored(self, cmids: Sequence[str]) -> list[Message]: ...
    def take_positions(self, n: int) -> int: ...
    def insert_changes(self, now: str, done: Sequence[Change]) -> None: ...
    def set_heads(self, heads: Sequence[tuple[str, int, int]]) -> None: ...
    def insert_messages(self, rows: Sequence[tuple[Any, ...]]) -> None: ...
    def read_up_to(self, rows: Sequence[tuple[str, str, int]]) -> None: ...


def _marks(n: int) -> str:
    return ",".join("?" * n)


_INSERT_MESSAGE = (
    f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) VALUES ({_marks(len(MESSAGE_COLUMNS))})"
)
_INSERT_CHANGE = (
    "INSERT INTO changes (position, room_id, rev, name, ref, data, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class SqliteBatch:
    """The statements on the raw ``sqlite3`` connection of the writer thread."""

    __slots__ = ("_c",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def ensure_users(self, user_ids: Sequence[str], now: str) -> None:
        self._c.executemany(
            "INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, NULL, ?) "
            "ON CONFLICT DO NOTHING",
            [(u, u, now) for u in user_ids],
        )

    def lock_rooms(self, room_ids: Sequence[str]) -> list[RoomRow]:
        # The write transaction is BEGIN IMMEDIATE: nobody else writes until we commit.
        found = self._c.execute(
            "SELECT id, name, visibility, created_by, created_at, last_seq, last_rev "
            f"FROM rooms WHERE id IN ({_marks(len(room_ids))})",
            room_ids,
        ).fetchall()
        return [RoomRow(*r) for r in found]

    def create_rooms(self, rows: Sequence[tuple[str, str]], now: str) -> None:
        self._c.executemany(
            "INSERT INTO rooms (id, name, visibility, created_by, created_at) "
            "VALUES (?, ?, 'public', ?, ?) ON CONFLICT DO NOTHING",
            [(rid, rid, user, now) for rid, user in rows],
        )

    def add_members(self, rows: Sequence[tuple[str, str, str]], now: str) -> None:
        self._c.executemany(
            "INSERT INTO members (room_id, user_id, role, joined_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [(r, u, role, now) for r, u, role in rows],
        )

    def memberships(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        # One primary-key lookup per pair (``CROSS JOIN`` keeps the pairs as the outer loop):
        # ``room_id IN … AND user_id IN …`` would read the batch's rooms × users.
        values = ",".join(["(?, ?)"] * len(pairs))
        found = self._c.execute(
            f"SELECT m.room_id, m.user_id FROM (VALUES {values}) AS v CROSS JOIN members AS m "
            "ON m.room_id = v.column1 AND m.user_id = v.column2",
            [x for pair in pairs for x in pair],
        ).fetchall()
        return {(r, u) for r, u in found}

    def stored(self, cmids: Sequence[str]) -> list[Message]:
        found = self._c.execute(
            f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages "
            f"WHERE client_msg_id IN ({_marks(len(cmids))})",
            cmids,
        ).fetchall()
        return [message_of(MessageRow(*r)) for r in found]

    def take_positions(self, n: int) -> int:
        row = self._c.execute(
            "UPDATE counters SET value = value + ? WHERE name = 'messages' RETURNING value", (n,)
        ).fetchone()
        return int(row[0]) - n + 1

    def insert_changes(self, now: str, done: Sequence[Change]) -> None:
        if done:
            self._c.executemany(
                _INSERT_CHANGE,
                [(c.position, c.room_id, c.rev, c.name, c.ref, c.data.decode(), now) for c in done],
            )

    def set_heads(self, heads: Sequence[tuple[str, int, int]]) -> None:
        self._c.executemany(
            "UPDATE rooms SET last_seq = ?, last_rev = ? WHERE id = ?",
            [(head, rev, rid) for rid, head, rev in heads],
        )

    def insert_messages(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self._c.executemany(_INSERT_MESSAGE, rows)

    def read_up_to(self, rows: Sequence[tuple[str, str, int]]) -> None:
        # A read pointer only moves forward.
        self._c.executemany(
            "UPDATE members SET last_read_seq = ? "
            "WHERE room_id = ? AND user_id = ? AND last_read_seq < ?",
            [(seq, rid, uid, seq) for rid, uid, seq in rows],
        )


class SaBatch:
    """The same statements in SQLAlchemy Core (PostgreSQL: row locks with ``FOR UPDATE``)."""

    __slots__ = ("_c", "_db")

    def __init__(self, db: Database, conn: Connection) -> None:
        self._db = db
        self._c = conn

    def ensure_users(self, user_ids: Sequence[str], now: str) -> None:
        ensure_users(self._db, self._c, user_ids)

    def lock_rooms(self, room_ids: Sequence[str]) -> list[RoomRow]:
        query = sa.select(
            rooms.c.id,
            rooms.c.name,
            rooms.c.visibility,
            rooms.c.created_by,
            rooms.c.created_at,
            rooms.c.last_seq,
            rooms.c.last_rev,
        ).where(rooms.c.id.in_(room_ids))
        if self._db.dialect == "postgresql":
            query = query.with_for_update()
        return [RoomRow(*r) for r in self._c.execute(query).all()]

    def create_rooms(self, rows: Sequence[tuple[str, str]], now: str) -> None:
        self._c.execute(
            self._db.insert_ignore(rooms),
            [
                {"id": r, "name": r, "visibility": "public", "created_by": u, "created_at": now}
                for r, u in rows
            ],
        )

    def add_members(self, rows: Sequence[tuple[str, str, str]], now: str) -> None:
        self._c.execute(
            self._db.insert_ignore(members),
            [{"room_id": r, "user_id": u, "role": role, "joined_at": now} for r, u, role in rows],
        )

    def memberships(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        found = self._c.execute(
            sa.select(members.c.room_id, members.c.user_id).where(
                sa.tuple_(members.c.room_id, members.c.user_id).in_(list(pairs))
            )
        ).all()
        return {(r.room_id, r.user_id) for r in found}

    def stored(self, cmids: Sequence[str]) -> list[Message]:
        query = sa.select(messages).where(messages.c.client_msg_id.in_(cmids))
        return [message_of(r) for r in self._c.execute(query).all()]

    def take_positions(self, n: int) -> int:
        return take_positions(self._c, n)

    def insert_changes(self, now: str, done: Sequence[Change]) -> None:
        insert_changes(self._c, now, done)

    def set_heads(self, heads: Sequence[tuple[str, int, int]]) -> None:
        self._c.execute(SET_HEAD, [{"rid": r, "head": h, "rev": v} for r, h, v in heads])

    def insert_messages(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self._c.execute(
            messages.insert(), [dict(zip(MESSAGE_COLUMNS, r, strict=True)) for r in rows]
        )

    def read_up_to(self, rows: Sequence[tuple[str, str, int]]) -> None:
        self._c.execute(READ_UP_TO, [{"rid": r, "uid": u, "seq": s} for r, u, s in rows])
