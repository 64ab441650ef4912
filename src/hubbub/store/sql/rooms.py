"""Rooms in SQL: rooms, membership and trust mode's first use (rules: ``store/roles.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import sqlalchemy as sa
from sqlalchemy import Connection

from hubbub.changes import Change, Pending
from hubbub.models import Member, Role, Room, Visibility, personal_channel, utc_now
from hubbub.store.base import RoomView
from hubbub.store.changelog import lock_room, record
from hubbub.store.schema import members, messages, rooms, users
from hubbub.store.sql.engine import Database, new_id
from hubbub.store.sql.enter import enter_rooms
from hubbub.store.sql.rows import entered, room_of, username_of, with_reactions


class SqlRooms:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_room(
        self,
        name: str,
        visibility: Visibility,
        creator: str,
        room_id: str | None = None,
        creator_name: str | None = None,
    ) -> tuple[Room, list[Change]]:
        room = Room(
            id=room_id or new_id()[:16],
            name=name,
            visibility=visibility,
            created_by=creator,
            created_at=utc_now(),
        )

        def work(conn: Connection) -> list[Change]:
            conn.execute(
                rooms.insert().values(
                    id=room.id,
                    name=name,
                    visibility=visibility,
                    created_by=creator,
                    created_at=room.created_at,
                )
            )
            conn.execute(
                members.insert().values(
                    room_id=room.id, user_id=creator, role="admin", joined_at=room.created_at
                )
            )
            who = creator_name or username_of(conn, creator)
            return record(conn, room.created_at, entered(room, creator, who))

        return room, await self._db.write(work)

    async def room(self, room_id: str) -> Room | None:
        row = await self._db.first(sa.select(rooms).where(rooms.c.id == room_id))
        return None if row is None else room_of(row)

    async def membership(self, room_id: str, user_id: str) -> Role | None:
        row = await self._db.first(
            sa.select(members.c.role).where(
                members.c.room_id == room_id, members.c.user_id == user_id
            )
        )
        return None if row is None else cast(Role, str(row.role))

    async def room_for(self, room_id: str, user_id: str) -> tuple[Room, Role | None] | None:
        mine = (
            sa.select(members.c.role)
            .where(members.c.room_id == rooms.c.id, members.c.user_id == user_id)
            .scalar_subquery()
        )
        row = await self._db.first(
            sa.select(rooms, mine.label("role")).where(rooms.c.id == room_id)
        )
        if row is None:
            return None
        return room_of(row), None if row.role is None else cast(Role, str(row.role))

    async def rooms_for(self, user_id: str) -> list[RoomView]:
        """Unread = the room's head minus my read pointer: two integers per room, no scan."""
        mine = (
            sa.select(members.c.room_id, members.c.role, members.c.last_read_seq)
            .where(members.c.user_id == user_id)
            .subquery()
        )
        last = messages.alias("last")
        query = (
            sa.select(rooms, mine.c.role, mine.c.last_read_seq, last.c.id.label("last_id"))
            .select_from(
                rooms.outerjoin(mine, mine.c.room_id == rooms.c.id).outerjoin(
                    last, sa.and_(last.c.room_id == rooms.c.id, last.c.seq == rooms.c.last_seq)
                )
            )
            .where(sa.or_(mine.c.role.is_not(None), rooms.c.visibility == "public"))
            .order_by(rooms.c.created_at, rooms.c.id)
        )

        def work(conn: Connection) -> list[RoomView]:
            rows = conn.execute(query).all()
            ids = [r.last_id for r in rows if r.last_id is not None]
            lasts = (
                {
                    m.id: m
                    for m in with_reactions(
                        conn, conn.execute(sa.select(messages).where(messages.c.id.in_(ids))).all()
                    )
                }
                if ids
                else {}
            )
            return [
                RoomView(
                    room=room_of(r),
                    member=r.role is not None,
                    role=r.role,
                    unread=None if r.role is None else max(0, r.last_seq - r.last_read_seq),
                    last_message=lasts.get(r.last_id),
                )
                for r in rows
            ]

        return await self._db.read(work)

    async def room_ids_of(self, user_id: str) -> list[str]:
        rows = await self._db.all(sa.select(members.c.room_id).where(members.c.user_id == user_id))
        return [r.room_id for r in rows]

    async def members(self, room_id: str) -> list[Member]:
        query = (
            sa.select(members.c.user_id, users.c.username, members.c.role, members.c.joined_at)
            .join(users, users.c.id == members.c.user_id)
            .where(members.c.room_id == room_id)
            .order_by(members.c.joined_at, members.c.user_id)
        )
        rows = await self._db.all(query)
        return [
            Member(user_id=r.user_id, username=r.username, role=r.role, joined_at=r.joined_at)
            for r in rows
        ]

    # changes -----------------------------------------------------------------------------

    async def add_member(self, room_id: str, user_id: str, role: Role = "member") -> list[Change]:
        db = self._db

        def work(conn: Connection) -> list[Change]:
            now = utc_now()
            lock_room(conn, room_id)
            res = conn.execute(
                db.insert_ignore(members).values(
                    room_id=room_id, user_id=user_id, role=role, joined_at=now
                )
            )
            if not res.rowcount:
                return []
            row = conn.execute(sa.select(rooms).where(rooms.c.id == room_id)).one()
            return record(conn, now, entered(room_of(row), user_id, username_of(conn, user_id)))

        return await db.write(work)

    async def remove_member(self, room_id: str, user_id: str) -> list[Change]:
        def work(conn: Connection) -> list[Change]:
            lock_room(conn, room_id)
            res = conn.execute(
                sa.delete(members).where(members.c.room_id == room_id, members.c.user_id == user_id)
            )
            if not res.rowcount:
                return []
            who = {"room_id": room_id, "user_id": user_id, "username": username_of(conn, user_id)}
            return record(
                conn,
                utc_now(),
                [
                    Pending(room_id, "member_left", who, user_id),
                    Pending(personal_channel(user_id), "room_removed", {"room_id": room_id}),
                ],
            )

        return await self._db.write(work)

    async def update_room(
        self, room_id: str, *, name: str | None, visibility: Visibility | None
    ) -> tuple[Room, list[Change]] | None:
        def work(conn: Connection) -> tuple[Room, list[Change]] | None:
            lock_room(conn, room_id)
            row = conn.execute(sa.select(rooms).where(rooms.c.id == room_id)).first()
            if row is None:
                return None
            values = {}
            if name is not None and name != row.name:
                values["name"] = name
            if visibility is not None and visibility != row.visibility:
                values["visibility"] = visibility
            if not values:
                return room_of(row), []
            conn.execute(rooms.update().where(rooms.c.id == room_id).values(**values))
            room = room_of(conn.execute(sa.select(rooms).where(rooms.c.id == room_id)).one())
            return room, record(conn, utc_now(), [Pending(room_id, "room_updated", room)])

        return await self._db.write(work)

    # trust mode's first use ----------------------------------------------------------------

    async def enter_room(
        self, room_id: str, user_id: str, username: str | None = None
    ) -> tuple[Room, list[Change]]:
        return (await self.enter_rooms([(room_id, user_id, username or user_id)]))[0]

    async def enter_rooms(
        self, items: Sequence[tuple[str, str, str]]
    ) -> list[tuple[Room, list[Change]]]:
        return await enter_rooms(self._db, items)
