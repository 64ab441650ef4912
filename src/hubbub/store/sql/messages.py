"""Messages in SQL: the send path's retry rules, reads, edits, reactions, read pointers and
retention (rules: ``store/roles.py``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from hubbub.changes import Change, Pending
from hubbub.models import Message, personal_channel, utc_now
from hubbub.store.base import AppendOutcome, AppendRequest, AppendResult
from hubbub.store.changelog import lock_room, record
from hubbub.store.schema import changes, files, members, messages, reactions
from hubbub.store.sql.append import append_batch
from hubbub.store.sql.engine import INTEGRITY, UNAVAILABLE, Database
from hubbub.store.sql.fts_index import FtsCatchUp
from hubbub.store.sql.rows import READ_UP_TO, with_reactions

log = logging.getLogger("hubbub.store")


class SqlMessages:
    def __init__(self, db: Database, fts: FtsCatchUp) -> None:
        self._db = db
        self._fts = fts
        self._known_users: set[str] = set()  # trust-mode users known to exist

    async def append_batch(self, items: Sequence[AppendRequest]) -> list[AppendResult]:
        """One transaction for the batch. If it fails for a reason that is not the database
        being away (a constraint, a bad value, a trigger), the batch is redone item by item so
        the failure stays with the item that caused it (``REJECTED``); the others are stored."""
        try:
            results = await append_batch(self._db, items, self._known_users)
            self._remember_users(items)
            self._fts.note_stored()
            return results
        except UNAVAILABLE:
            raise
        except Exception as exc:
            if len(items) > 1:
                out: list[AppendResult] = []
                for item in items:
                    out.extend(await self.append_batch([item]))
                return out
            if isinstance(exc, INTEGRITY):
                # Perhaps another node stored the same client_msg_id between our check and our
                # insert: once more, and the re-check finds it.
                try:
                    again_results = await append_batch(self._db, items, self._known_users)
                    self._fts.note_stored()
                    return again_results
                except UNAVAILABLE:
                    raise
                except Exception as again:
                    exc = again
            log.warning("message of %s refused by the store: %s", items[0].message.user_id, exc)
            return [AppendResult(AppendOutcome.REJECTED)]

    def _remember_users(self, items: Sequence[AppendRequest]) -> None:
        if len(self._known_users) > 100_000:
            self._known_users.clear()
        self._known_users.update(it.message.user_id for it in items if it.create_user)

    async def history(
        self,
        room_id: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        query = sa.select(messages).where(messages.c.room_id == room_id)
        if before is not None:
            query = query.where(messages.c.seq < before)
        if after is not None:
            query = query.where(messages.c.seq > after).order_by(messages.c.seq).limit(limit)
        else:
            query = query.order_by(messages.c.seq.desc()).limit(limit)
        out = await self._db.read(lambda c: with_reactions(c, c.execute(query).all()))
        if after is None:
            out.reverse()
        return out

    async def message(self, message_id: str) -> Message | None:
        query = sa.select(messages).where(messages.c.id == message_id)
        found = await self._db.read(lambda c: with_reactions(c, c.execute(query).all()))
        return found[0] if found else None

    async def oldest_seq(self, room_id: str) -> int | None:
        row = await self._db.first(
            sa.select(sa.func.min(messages.c.seq).label("oldest")).where(
                messages.c.room_id == room_id
            )
        )
        return None if row is None or row.oldest is None else int(row.oldest)

    # changes -----------------------------------------------------------------------------

    async def _changed_message(
        self, name: str, message_id: str, stmt: Any, before: Any = None
    ) -> tuple[Message, list[Change]] | None:
        """Run an UPDATE … RETURNING on one message and log it as ``name`` (the whole message
        after the change, so a replay can fold repeated changes into the last one)."""

        def work(conn: Connection) -> tuple[Message, list[Change]] | None:
            room_id = conn.execute(
                sa.select(messages.c.room_id).where(messages.c.id == message_id)
            ).scalar()
            if room_id is None:
                return None
            lock_room(conn, str(room_id))
            if before is not None:
                conn.execute(before)
            rows = conn.execute(stmt).all()
            if not rows:
                return None
            msg = with_reactions(conn, rows)[0]
            return msg, record(conn, utc_now(), [Pending(msg.room_id, name, msg, msg.id)])

        return await self._db.write(work)

    async def edit_message(self, message_id: str, text: str) -> tuple[Message, list[Change]] | None:
        return await self._changed_message(
            "message_edited",
            message_id,
            messages.update()
            .where(messages.c.id == message_id, messages.c.deleted == sa.false())
            .values(text=text, edited_at=utc_now())
            .returning(*messages.c),
        )

    async def delete_message(self, message_id: str) -> tuple[Message, list[Change]] | None:
        return await self._changed_message(
            "message_deleted",
            message_id,
            messages.update()
            .where(messages.c.id == message_id)
            .values(text="", file=None, deleted=True)
            .returning(*messages.c),
            before=sa.delete(reactions).where(reactions.c.message_id == message_id),
        )

    async def react(self, message_id: str, user_id: str, reaction: str, add: bool) -> list[Change]:
        if add:
            stmt: Any = self._db.insert_ignore(reactions).values(
                message_id=message_id, user_id=user_id, reaction=reaction, created_at=utc_now()
            )
        else:
            stmt = sa.delete(reactions).where(
                reactions.c.message_id == message_id,
                reactions.c.user_id == user_id,
                reactions.c.reaction == reaction,
            )

        def work(conn: Connection) -> list[Change]:
            row = conn.execute(
                sa.select(messages.c.room_id, messages.c.seq).where(messages.c.id == message_id)
            ).first()
            if row is None:
                return []
            lock_room(conn, row.room_id)
            if not conn.execute(stmt).rowcount:
                return []
            payload = {
                "message_id": message_id,
                "room_id": row.room_id,
                "user_id": user_id,
                "reaction": reaction,
                "action": "added" if add else "removed",
                "seq": int(row.seq),
            }
            return record(conn, utc_now(), [Pending(row.room_id, "reaction", payload)])

        return await self._db.write(work)

    async def mark_read(self, room_id: str, user_id: str, seq: int) -> tuple[int, list[Change]]:
        def work(conn: Connection) -> tuple[int, list[Change]]:
            lock_room(conn, room_id)
            moved = conn.execute(READ_UP_TO, {"rid": room_id, "uid": user_id, "seq": seq})
            pointer = conn.execute(
                sa.select(members.c.last_read_seq).where(
                    members.c.room_id == room_id, members.c.user_id == user_id
                )
            ).scalar()
            pointer = int(pointer or 0)
            if not moved.rowcount:
                return pointer, []
            payload = {"room_id": room_id, "user_id": user_id, "seq": pointer}
            return pointer, record(
                conn, utc_now(), [Pending(personal_channel(user_id), "read", payload)]
            )

        return await self._db.write(work)

    async def purge_older_than(self, days: int) -> tuple[int, list[str]]:
        cutoff = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        old = sa.select(messages.c.id).where(messages.c.created_at < cutoff)

        def work(conn: Connection) -> tuple[int, list[str]]:
            conn.execute(sa.delete(reactions).where(reactions.c.message_id.in_(old)))
            gone = conn.execute(sa.delete(messages).where(messages.c.created_at < cutoff))
            conn.execute(sa.delete(changes).where(changes.c.created_at < cutoff))
            file_ids = [
                r.id
                for r in conn.execute(
                    sa.delete(files).where(files.c.created_at < cutoff).returning(files.c.id)
                ).all()
            ]
            return int(gone.rowcount), file_ids

        return await self._db.write(work)
