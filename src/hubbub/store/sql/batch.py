"""The send path's statements, written twice: plain SQL on the ``sqlite3`` driver, and
SQLAlchemy Core for PostgreSQL. ``append.py`` holds the batch's rules and calls these.

Why twice: a send batch runs 6-8 statements in the one writer thread, and SQLAlchemy's work per
statement (cache-key generation, parameter processing, the execution context, result rows)
measured more CPU than SQLite's own work for the statement. On SQLite the send path therefore
talks to the driver directly with precompiled ``?`` statements and one ``executemany`` per kind
of statement (SQLite caches the prepared statements per connection). PostgreSQL keeps the
SQLAlchemy statements (there the round trip to the server is the larger cost), each one
statement over arrays (``unnest``) rather than one per row: its text, and asyncpg's prepared
statement, the same whatever the batch size (64 publishers: 2,768 -> 4,871-5,057 durable sends/s,
``bench/sends_probe.py --database postgresql+asyncpg://…``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql

from hubbub.changes import Change
from hubbub.models import Message
from hubbub.store.changelog import insert_changes, take_positions
from hubbub.store.schema import members, messages, rooms
from hubbub.store.sql.engine import Database
from hubbub.store.sql.rows import ensure_users, message_of

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


T = TypeVar("T")


async def run_batch(db: Database, work: Callable[[BatchSql], T]) -> T:
    """``work`` in one write transaction, over this database's statements: on SQLite the
    writer's ``sqlite3`` driver in the writer thread, on PostgreSQL SQLAlchemy."""
    if db.dialect == "sqlite":
        return await db.write_driver(lambda raw: work(SqliteBatch(raw)))
    return await db.write(lambda conn: work(SaBatch(db, conn)))


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


# PostgreSQL: a statement over many rows takes them as arrays (``unnest``), so its text (and
# asyncpg's prepared statement) is the same whatever the batch size, and it is one statement,
# not one per row.
_TEXTS = postgresql.ARRAY(sa.String)
_INTS = postgresql.ARRAY(sa.BigInteger)
_PG_MEMBERSHIPS = sa.text(
    "SELECT m.room_id, m.user_id FROM unnest(:rids, :uids) AS p(rid, uid) "
    "JOIN members AS m ON m.room_id = p.rid AND m.user_id = p.uid"
).bindparams(sa.bindparam("rids", type_=_TEXTS), sa.bindparam("uids", type_=_TEXTS))
_PG_SET_HEADS = sa.text(
    "UPDATE rooms AS r SET last_seq = p.head, last_rev = p.rev "
    "FROM unnest(:rids, :heads, :revs) AS p(rid, head, rev) WHERE r.id = p.rid"
).bindparams(
    sa.bindparam("rids", type_=_TEXTS),
    sa.bindparam("heads", type_=_INTS),
    sa.bindparam("revs", type_=_INTS),
)
_PG_READ_UP_TO = sa.text(
    "UPDATE members AS m SET last_read_seq = p.seq "
    "FROM unnest(:rids, :uids, :seqs) AS p(rid, uid, seq) "
    "WHERE m.room_id = p.rid AND m.user_id = p.uid AND m.last_read_seq < p.seq"
).bindparams(
    sa.bindparam("rids", type_=_TEXTS),
    sa.bindparam("uids", type_=_TEXTS),
    sa.bindparam("seqs", type_=_INTS),
)

_BOOLS = postgresql.ARRAY(sa.Boolean)
_COLUMN_ARRAYS: dict[str, sa.types.TypeEngine[Any]] = {
    "gseq": _INTS,
    "rev": _INTS,
    "seq": _INTS,
    "deleted": _BOOLS,
}
_PG_INSERT_MESSAGES = sa.text(
    f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(':' + c for c in MESSAGE_COLUMNS)})"
).bindparams(*(sa.bindparam(c, type_=_COLUMN_ARRAYS.get(c, _TEXTS)) for c in MESSAGE_COLUMNS))
_PG_LOCK_ROOMS = sa.text(
    "SELECT id, name, visibility, created_by, created_at, last_seq, last_rev FROM rooms "
    "WHERE id = ANY(:rids) ORDER BY id FOR UPDATE"
).bindparams(sa.bindparam("rids", type_=_TEXTS))


class SaBatch:
    """The same statements for PostgreSQL, in SQLAlchemy Core: row locks with ``FOR UPDATE``,
    and the per-row statements as one statement over arrays."""

    __slots__ = ("_c", "_db")

    def __init__(self, db: Database, conn: Connection) -> None:
        self._db = db
        self._c = conn

    def ensure_users(self, user_ids: Sequence[str], now: str) -> None:
        ensure_users(self._db, self._c, user_ids)

    def lock_rooms(self, room_ids: Sequence[str]) -> list[RoomRow]:
        # In id order, as every writer takes them: concurrent writers queue, never deadlock.
        return [RoomRow(*r) for r in self._c.execute(_PG_LOCK_ROOMS, {"rids": list(room_ids)})]

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
            _PG_MEMBERSHIPS, {"rids": [r for r, _ in pairs], "uids": [u for _, u in pairs]}
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
        if heads:
            self._c.execute(
                _PG_SET_HEADS,
                {
                    "rids": [r for r, _, _ in heads],
                    "heads": [h for _, h, _ in heads],
                    "revs": [v for _, _, v in heads],
                },
            )

    def insert_messages(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            columns = list(zip(*rows, strict=True))
            self._c.execute(
                _PG_INSERT_MESSAGES,
                {name: list(col) for name, col in zip(MESSAGE_COLUMNS, columns, strict=True)},
            )

    def read_up_to(self, rows: Sequence[tuple[str, str, int]]) -> None:
        # One row per pair (an UPDATE … FROM applies one match per row): its highest seq.
        highest: dict[tuple[str, str], int] = {}
        for r, u, seq in rows:
            if seq > highest.get((r, u), 0):
                highest[(r, u)] = seq
        if highest:
            self._c.execute(
                _PG_READ_UP_TO,
                {
                    "rids": [r for r, _ in highest],
                    "uids": [u for _, u in highest],
                    "seqs": list(highest.values()),
                },
            )
