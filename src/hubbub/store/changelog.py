"""The change log, as plain functions of a SQLAlchemy ``Connection`` (run inside the write
transaction of the change itself, so a change and its log row commit together or not at all).

Why this shape (see ``docs/architecture.md``, "The change log"):

* one extra row per change, nothing per message: a message *is* its own log entry (its row
  carries ``rev`` and ``gseq``), only edits, deletes, reactions, membership and room changes and
  a user's personal changes add a row to ``changes``;
* two numbers per entry: ``rev`` orders a room (messages and changes of the room share it, so
  the hub's sequencer orders both and repairs holes in both), and the stream position orders
  ``/chat/events`` (one counter across rooms). Both are taken under the same locks as ``seq``;
* resume is two index range scans merged: ``(room_id, rev)`` for a room, the position
  (``changes`` primary key, ``messages.gseq``) for a user's stream — never a scan of history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from hubbub.changes import Change, Pending
from hubbub.encoding import line_safe_json
from hubbub.models import is_personal, personal_channel
from hubbub.store.schema import changes, counters, rooms

TAKE_POSITIONS = (
    counters.update()
    .where(counters.c.name == "messages")
    .values(value=counters.c.value + sa.bindparam("n"))
    .returning(counters.c.value)
)
_TAKE_REVS = (
    rooms.update()
    .where(rooms.c.id == sa.bindparam("rid"))
    .values(last_rev=rooms.c.last_rev + sa.bindparam("n"))
    .returning(rooms.c.last_rev)
)


def lock_room(conn: Connection, room_id: str) -> None:
    """Every transaction that logs a room change takes the room's row first, as a send does:
    one lock order (room, then the position counter, then member rows) for every writer, so
    concurrent writers on PostgreSQL queue instead of deadlocking. (SQLite has one writer.)"""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(rooms.c.id).where(rooms.c.id == room_id).with_for_update())


def take_positions(conn: Connection, n: int) -> int:
    """Reserve ``n`` stream positions; returns the first."""
    last = int(conn.execute(TAKE_POSITIONS, {"n": n}).scalar_one())
    return last - n + 1


def record(conn: Connection, now: str, pending: Sequence[Pending]) -> list[Change]:
    """Log changes in the current transaction, in the given order. Locks in the order every
    writer takes them — room rows (sorted by id), then the position counter — so concurrent
    writers on PostgreSQL queue instead of deadlocking."""
    if not pending:
        return []
    per_room: dict[str, int] = defaultdict(int)
    for p in pending:
        if not is_personal(p.room_id):
            per_room[p.room_id] += 1
    next_rev: dict[str, int] = {}
    for room_id, n in sorted(per_room.items()):
        last = conn.execute(_TAKE_REVS, {"rid": room_id, "n": n}).scalar_one()
        next_rev[room_id] = int(last) - n + 1
    position = take_positions(conn, len(pending))
    out: list[Change] = []
    for p in pending:
        rev = None
        if p.room_id in next_rev:
            rev = next_rev[p.room_id]
            next_rev[p.room_id] = rev + 1
        out.append(Change(p.room_id, p.name, line_safe_json(p.payload), position, rev, p.ref))
        position += 1
    insert_changes(conn, now, out)
    return out


def insert_changes(conn: Connection, now: str, done: Sequence[Change]) -> None:
    if done:
        conn.execute(
            changes.insert(),
            [
                {
                    "position": c.position,
                    "room_id": c.room_id,
                    "rev": c.rev,
                    "name": c.name,
                    "ref": c.ref,
                    "data": c.data.decode(),
                    "created_at": now,
                }
                for c in done
            ],
        )


def to_change(row: Any) -> Change:
    return Change(
        row.room_id,
        row.name,
        row.data.encode(),
        int(row.position),
        None if row.rev is None else int(row.rev),
        row.ref,
    )


def room_changes(
    conn: Connection, room_id: str, after: int, before: int | None, limit: int
) -> list[Change]:
    query = sa.select(changes).where(changes.c.room_id == room_id, changes.c.rev > after)
    if before is not None:
        query = query.where(changes.c.rev < before)
    return [to_change(r) for r in conn.execute(query.order_by(changes.c.rev).limit(limit)).all()]


def user_changes(
    conn: Connection,
    user_id: str,
    room_ids: Sequence[str],
    after: int,
    limit: int,
    *,
    personal: bool = True,
) -> list[Change]:
    channels = [*room_ids, personal_channel(user_id)] if personal else list(room_ids)
    query = (
        sa.select(changes)
        .where(changes.c.position > after, changes.c.room_id.in_(channels))
        .order_by(changes.c.position)
        .limit(limit)
    )
    return [to_change(r) for r in conn.execute(query).all()]
