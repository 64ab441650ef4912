"""The change log in SQL: the reads that replay it and settle holes in it (rules:
``store/roles.py``; how it is written: ``store/changelog.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from hubbub.changes import Change, Entry, LoggedMessage, Pending, merge
from hubbub.models import is_personal, personal_channel, utc_now
from hubbub.store.changelog import record, room_changes, to_change, user_changes
from hubbub.store.schema import changes, counters, members, messages, rooms
from hubbub.store.sql.engine import Database, json_array
from hubbub.store.sql.rows import logged

_HEADS = "SELECT id, last_rev FROM rooms WHERE id IN (SELECT value FROM json_each(?))"


class SqlChangeLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def heads(self, room_ids: list[str]) -> dict[str, int]:
        """Each room's newest ``rev`` (the head of its log), in one query."""
        if self._db.raw_reads:  # SQLite: one statement text for any number of rooms
            keys = json_array(room_ids)
            found = await self._db.read_driver(lambda raw: raw.execute(_HEADS, (keys,)).fetchall())
            return {room_id: int(rev) for room_id, rev in found}
        rows = await self._db.all(
            sa.select(rooms.c.id, rooms.c.last_rev).where(rooms.c.id.in_(room_ids))
        )
        return {r.id: int(r.last_rev) for r in rows}

    async def room_log(
        self, room_id: str, after: int, limit: int, before: int | None = None
    ) -> list[Entry]:
        """A room's stored events with ``after < rev < before``, in ``rev`` order: messages
        (in their current state) and changes, merged. Two index range scans, read in one
        snapshot: a message and a later change committed between the scans must not come back
        as the change alone (the page would end past the message, and a resume from its end
        would skip it for good)."""
        query = sa.select(messages).where(messages.c.room_id == room_id, messages.c.rev > after)
        if before is not None:
            query = query.where(messages.c.rev < before)
        query = query.order_by(messages.c.rev).limit(limit)

        def work(conn: Connection) -> list[Entry]:
            found = logged(conn, conn.execute(query).all())
            return merge(
                found, room_changes(conn, room_id, after, before, limit), limit, by_position=False
            )

        return await self._db.read(work, snapshot=True)

    async def user_log(
        self, user_id: str, after: int, limit: int, *, only_room: str | None = None
    ) -> list[Entry]:
        """Everything ``/chat/events`` replays for ``user_id`` after stream position ``after``,
        in position order: messages and changes of every room they are in (rooms joined since
        included) and their personal changes — or of ``only_room`` alone, if they are in it
        (``only_room`` their personal channel: their personal changes alone)."""

        def work(conn: Connection) -> list[Entry]:
            if only_room == personal_channel(user_id):
                return list(user_changes(conn, user_id, [], after, limit))
            mine = sa.select(members.c.room_id).where(members.c.user_id == user_id)
            if only_room is not None:
                mine = mine.where(members.c.room_id == only_room)
            room_ids = [r.room_id for r in conn.execute(mine).all()]
            if only_room is not None and not room_ids:
                return []
            found: list[LoggedMessage] = []
            if room_ids:
                query = (
                    sa.select(messages)
                    .where(messages.c.gseq > after, messages.c.room_id.in_(room_ids))
                    .order_by(messages.c.gseq)
                    .limit(limit)
                )
                found = logged(conn, conn.execute(query).all())
            changed = user_changes(
                conn, user_id, room_ids, after, limit, personal=only_room is None
            )
            return merge(found, changed, limit, by_position=True)

        return await self._db.read(work, snapshot=True)  # one moment, as room_log

    async def notify(self, user_id: str, event: str, data: Any) -> Change:
        def work(conn: Connection) -> Change:
            now = utc_now()
            payload = {"event": event, "data": data, "created_at": now}
            channel = personal_channel(user_id)
            [change] = record(conn, now, [Pending(channel, "notification", payload)])
            return change

        return await self._db.write(work)

    async def rev_at(self, room_id: str, seq: int) -> int:
        """The ``rev`` of message ``seq`` (or of the newest one before it): where a client that
        last saw message ``seq`` stands in the room's log."""
        row = await self._db.first(
            sa.select(messages.c.rev)
            .where(messages.c.room_id == room_id, messages.c.seq <= seq)
            .order_by(messages.c.seq.desc())
            .limit(1)
        )
        return 0 if row is None or row.rev is None else int(row.rev)

    async def position(self) -> int:
        """The newest stream position handed out."""
        row = await self._db.first(sa.select(counters.c.value).where(counters.c.name == "messages"))
        return 0 if row is None else int(row.value)

    async def log_between(self, after: int, through: int, channels: Sequence[str]) -> list[Entry]:
        """Range scans on the positions (``messages.gseq``, the ``changes`` key), filtered by
        channel: settles a gap the hub saw in live stream positions."""
        rooms_only = [c for c in channels if not is_personal(c)]

        def work(conn: Connection) -> list[Entry]:
            found: list[LoggedMessage] = []
            changed: list[Change] = []
            for start in range(0, max(len(channels), 1), 500):
                chunk = list(channels[start : start + 500])
                room_chunk = [c for c in chunk if c in rooms_only]
                if room_chunk:
                    query = sa.select(messages).where(
                        messages.c.gseq > after,
                        messages.c.gseq <= through,
                        messages.c.room_id.in_(room_chunk),
                    )
                    found += logged(conn, conn.execute(query).all())
                if chunk:
                    query = sa.select(changes).where(
                        changes.c.position > after,
                        changes.c.position <= through,
                        changes.c.room_id.in_(chunk),
                    )
                    changed += [to_change(r) for r in conn.execute(query).all()]
            return merge(found, changed, len(found) + len(changed), by_position=True)

        if not channels or through <= after:
            return []
        return await self._db.read(work)

    async def visible_position(self, user_id: str, room_ids: Sequence[str]) -> int:
        """Point lookups only: a room's newest entry is the message or change whose ``rev`` is
        the room's ``last_rev`` (``ix_messages_room_rev``, ``ix_changes_room_rev``); the
        personal channel's is one seek on ``ix_changes_room_position``."""

        def work(conn: Connection) -> int:
            newest = [
                conn.execute(
                    sa.select(sa.func.max(changes.c.position)).where(
                        changes.c.room_id == personal_channel(user_id)
                    )
                ).scalar()
            ]
            for start in range(0, len(room_ids), 500):
                chunk = list(room_ids[start : start + 500])
                for table, column in ((messages, messages.c.gseq), (changes, changes.c.position)):
                    newest.append(
                        conn.execute(
                            sa.select(sa.func.max(column))
                            .select_from(
                                rooms.join(
                                    table,
                                    sa.and_(
                                        table.c.room_id == rooms.c.id,
                                        table.c.rev == rooms.c.last_rev,
                                    ),
                                )
                            )
                            .where(rooms.c.id.in_(chunk))
                        ).scalar()
                    )
            return max((int(n) for n in newest if n is not None), default=0)

        return await self._db.read(work)
