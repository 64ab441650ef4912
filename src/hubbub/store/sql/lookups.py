"""Many reads at once, for connect storms (rules: ``store/roles.py``, ``Lookups``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import cast

import sqlalchemy as sa
from sqlalchemy import Connection

from hubbub.auth.names import username_key
from hubbub.models import Role, Room
from hubbub.store.base import SessionRecord
from hubbub.store.schema import members, rooms, sessions, users
from hubbub.store.sql.batch import RoomRow
from hubbub.store.sql.engine import Database, json_array
from hubbub.store.sql.rows import room_of


class SqlLookups:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def accounts_named(self, names: Sequence[str]) -> dict[str, tuple[str, str]]:
        keys = {name: username_key(name) for name in names}
        query = sa.select(users.c.id, users.c.username, users.c.username_key).where(
            sa.or_(
                users.c.id.in_(list(keys)),
                users.c.username.in_(list(keys)),
                users.c.username_key.in_(sorted(set(keys.values()))),
            )
        )
        rows = await self._db.all(query)
        by_id = {r.id: (r.id, r.username) for r in rows}
        by_name = {r.username: (r.id, r.username) for r in rows}
        by_key = {r.username_key: (r.id, r.username) for r in rows if r.username_key is not None}
        out: dict[str, tuple[str, str]] = {}
        for name, key in keys.items():
            found = by_id.get(name) or by_name.get(name) or by_key.get(key)
            if found is not None:
                out[name] = found
        return out

    async def usernames(self, user_ids: Sequence[str]) -> dict[str, str]:
        rows = await self._db.all(
            sa.select(users.c.id, users.c.username).where(users.c.id.in_(list(user_ids)))
        )
        return {r.id: r.username for r in rows}

    async def sessions(self, session_ids: Sequence[str]) -> dict[str, SessionRecord]:
        rows = await self._db.all(sa.select(sessions).where(sessions.c.id.in_(list(session_ids))))
        return {
            r.id: SessionRecord(
                id=r.id, user_id=r.user_id, expires_at=r.expires_at, revoked=bool(r.revoked)
            )
            for r in rows
        }

    async def room_access(
        self, pairs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[Room, Role | None]]:
        room_ids = sorted({r for r, _ in pairs})
        user_ids = sorted({u for _, u in pairs})
        if self._db.raw_reads:
            return await self._db.read_driver(lambda raw: _room_access_sqlite(raw, pairs, room_ids))

        def work(conn: Connection) -> dict[tuple[str, str], tuple[Room, Role | None]]:
            found = {
                row.id: room_of(row)
                for row in conn.execute(sa.select(rooms).where(rooms.c.id.in_(room_ids)))
            }
            roles = {
                (m.room_id, m.user_id): cast(Role, str(m.role))
                for m in conn.execute(
                    sa.select(members.c.room_id, members.c.user_id, members.c.role).where(
                        members.c.room_id.in_(list(found)), members.c.user_id.in_(user_ids)
                    )
                )
            }
            return {(r, u): (found[r], roles.get((r, u))) for r, u in pairs if r in found}

        return await self._db.read(work, snapshot=True)

    async def room_ids_of(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        rows = await self._db.all(
            sa.select(members.c.user_id, members.c.room_id).where(
                members.c.user_id.in_(list(user_ids))
            )
        )
        out: dict[str, list[str]] = {u: [] for u in user_ids}
        for row in rows:
            out[row.user_id].append(row.room_id)
        return out

    async def member_ids(self, room_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {r: [] for r in room_ids}
        if self._db.raw_reads:
            found = await self._db.read_driver(
                lambda raw: raw.execute(_MEMBER_IDS, (json_array(room_ids),)).fetchall()
            )
        else:
            found = await self._db.all(
                sa.select(members.c.room_id, members.c.user_id)
                .where(members.c.room_id.in_(list(room_ids)))
                .order_by(members.c.room_id, members.c.joined_at, members.c.user_id)
            )
        for room_id, user_id in found:
            out[room_id].append(user_id)
        return out


# SQLite, on the reading connection's own driver: one statement text whatever the number of
# keys (the keys travel as one JSON array), so SQLite's statement cache keeps it compiled.

_ROOMS_IN = (
    "SELECT id, name, visibility, created_by, created_at, last_seq, last_rev FROM rooms "
    "WHERE id IN (SELECT value FROM json_each(?))"
)
# By the exact (room, user) pairs: one index probe each (rooms × users would probe them all).
_ROLES_OF = (
    "SELECT m.room_id, m.user_id, m.role FROM json_each(?) AS p JOIN members AS m "
    "ON m.room_id = json_extract(p.value, '$[0]') AND m.user_id = json_extract(p.value, '$[1]')"
)
_MEMBER_IDS = (
    "SELECT room_id, user_id FROM members WHERE room_id IN (SELECT value FROM json_each(?)) "
    "ORDER BY room_id, joined_at, user_id"
)


def _room_access_sqlite(
    raw: sqlite3.Connection, pairs: Sequence[tuple[str, str]], room_ids: Sequence[str]
) -> dict[tuple[str, str], tuple[Room, Role | None]]:
    found = {
        row.id: room_of(row)
        for row in map(RoomRow._make, raw.execute(_ROOMS_IN, (json_array(room_ids),)))
    }
    roles = {
        (m[0], m[1]): cast(Role, str(m[2])) for m in raw.execute(_ROLES_OF, (json_array(pairs),))
    }
    return {(r, u): (found[r], roles.get((r, u))) for r, u in pairs if r in found}
