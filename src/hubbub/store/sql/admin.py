"""What only an operator asks of the database (``hubbub user list``, ``room list``,
``room delete``): whole-table listings and removing a room with everything in it. Not a
store role: the server never does these, so they live with the SQL backend alone."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection

from hubbub.store.schema import changes, files, members, messages, reactions, rooms, users
from hubbub.store.sql.engine import Database


class SqlAdmin:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def users(self) -> list[dict[str, object]]:
        """Every user, oldest first, with whether they have a password and how many rooms
        they are in."""
        count = (
            sa.select(sa.func.count())
            .select_from(members)
            .where(members.c.user_id == users.c.id)
            .scalar_subquery()
        )
        rows = await self._db.all(
            sa.select(
                users.c.id,
                users.c.username,
                users.c.created_at,
                users.c.password_hash.is_not(None).label("password"),
                count.label("rooms"),
            ).order_by(users.c.created_at, users.c.id)
        )
        return [
            {
                "id": r.id,
                "username": r.username,
                "created_at": r.created_at,
                "password": bool(r.password),
                "rooms": int(r.rooms),
            }
            for r in rows
        ]

    async def rooms(self) -> list[dict[str, object]]:
        """Every room, oldest first, with its member and message counts."""
        n_members = (
            sa.select(sa.func.count())
            .select_from(members)
            .where(members.c.room_id == rooms.c.id)
            .scalar_subquery()
        )
        rows = await self._db.all(
            sa.select(
                rooms.c.id,
                rooms.c.name,
                rooms.c.visibility,
                rooms.c.created_by,
                rooms.c.created_at,
                rooms.c.last_seq,
                n_members.label("members"),
            ).order_by(rooms.c.created_at, rooms.c.id)
        )
        return [
            {
                "id": r.id,
                "name": r.name,
                "visibility": r.visibility,
                "created_by": r.created_by,
                "created_at": r.created_at,
                "messages": int(r.last_seq),
                "members": int(r.members),
            }
            for r in rows
        ]

    async def delete_room(self, room_id: str) -> list[str] | None:
        """In one transaction: the room's messages, reactions, file records and log go, then
        the room. Its members must be gone already (removed through ``Rooms.remove_member``,
        so each of them has a logged ``room_removed``). The ids of its files, for the caller
        to delete from the FileStore; ``None``: no such room."""

        def work(conn: Connection) -> list[str] | None:
            if conn.execute(sa.select(rooms.c.id).where(rooms.c.id == room_id)).first() is None:
                return None
            mine = sa.select(messages.c.id).where(messages.c.room_id == room_id)
            conn.execute(sa.delete(reactions).where(reactions.c.message_id.in_(mine)))
            conn.execute(sa.delete(messages).where(messages.c.room_id == room_id))
            conn.execute(sa.delete(changes).where(changes.c.room_id == room_id))
            file_ids = [
                r.id
                for r in conn.execute(
                    sa.delete(files).where(files.c.room_id == room_id).returning(files.c.id)
                ).all()
            ]
            conn.execute(sa.delete(members).where(members.c.room_id == room_id))
            conn.execute(sa.delete(rooms).where(rooms.c.id == room_id))
            return file_ids

        return await self._db.write(work)
