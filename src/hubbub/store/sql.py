"""The SQL store (SQLAlchemy Core): SQLite via aiosqlite by default, PostgreSQL via asyncpg.

SQLite runs in WAL mode with two engines on the same file: one connection that writes (every
write transaction is ``BEGIN IMMEDIATE``, so writers queue in-process instead of failing with
"database is locked"), and a small pool of readers that never block on the writer.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import msgspec
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hubbub.models import FileInfo, Member, Message, Role, Room, User, Visibility, utc_now
from hubbub.store import migrate
from hubbub.store.base import (
    AppendOutcome,
    AppendRequest,
    AppendResult,
    RoomView,
    SessionRecord,
)
from hubbub.store.schema import members, messages, refresh_tokens, rooms, sessions, tickets, users

_json_encode = msgspec.json.Encoder().encode
_file_decoder = msgspec.json.Decoder(FileInfo)
_ts_decoder = msgspec.json.Decoder(int | float | str | None)


def new_id() -> str:
    return uuid.uuid4().hex


class SqlStore:
    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL") -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self._sync_mode = sqlite_synchronous
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self._write = create_async_engine(url, pool_size=1, max_overflow=0)
            self._read = create_async_engine(url, pool_size=4, max_overflow=4)
            self._configure_sqlite(self._write, "BEGIN IMMEDIATE")
            self._configure_sqlite(self._read, "BEGIN")
        else:
            self._write = create_async_engine(
                url, pool_size=10, max_overflow=10, pool_pre_ping=True
            )
            self._read = self._write

    def _configure_sqlite(self, engine: AsyncEngine, begin: str) -> None:
        sync_mode = self._sync_mode

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sync_mode}")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

    # lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await migrate.upgrade(self._write)

    async def close(self) -> None:
        await self._write.dispose()
        if self._read is not self._write:
            await self._read.dispose()

    async def ping(self) -> None:
        async with self._read.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    def _insert_ignore(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

    # accounts ----------------------------------------------------------------------------

    async def create_user(self, username: str, password_hash: str | None) -> User:
        user = User(id=new_id(), username=username, created_at=utc_now())
        async with self._write.begin() as conn:
            await conn.execute(
                users.insert().values(
                    id=user.id,
                    username=username,
                    password_hash=password_hash,
                    created_at=user.created_at,
                )
            )
        return user

    async def ensure_user(self, user_id: str) -> None:
        async with self._write.begin() as conn:
            await self._ensure_users(conn, [user_id])

    async def user_by_name(self, username: str) -> tuple[User, str | None] | None:
        async with self._read.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.username == username))).first()
        if row is None:
            return None
        return User(id=row.id, username=row.username, created_at=row.created_at), row.password_hash

    async def user_by_id(self, user_id: str) -> User | None:
        async with self._read.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()
        if row is None:
            return None
        return User(id=row.id, username=row.username, created_at=row.created_at)

    async def create_session(self, user_id: str, ttl: float) -> SessionRecord:
        now = time.time()
        rec = SessionRecord(id=new_id(), user_id=user_id, expires_at=now + ttl, revoked=False)
        async with self._write.begin() as conn:
            await conn.execute(
                sessions.insert().values(
                    id=rec.id, user_id=user_id, created_at=now, expires_at=rec.expires_at
                )
            )
        return rec

    async def session(self, session_id: str) -> SessionRecord | None:
        async with self._read.connect() as conn:
            row = (
                await conn.execute(sa.select(sessions).where(sessions.c.id == session_id))
            ).first()
        if row is None:
            return None
        return SessionRecord(
            id=row.id, user_id=row.user_id, expires_at=row.expires_at, revoked=bool(row.revoked)
        )

    async def revoke_session(self, session_id: str) -> None:
        async with self._write.begin() as conn:
            await conn.execute(
                sessions.update().where(sessions.c.id == session_id).values(revoked=True)
            )

    async def add_refresh_token(self, token_hash: str, session_id: str, ttl: float) -> None:
        async with self._write.begin() as conn:
            await conn.execute(
                refresh_tokens.insert().values(
                    token_hash=token_hash, session_id=session_id, expires_at=time.time() + ttl
                )
            )

    async def use_refresh_token(self, token_hash: str) -> tuple[str, SessionRecord] | None:
        async with self._write.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        refresh_tokens,
                        sessions.c.user_id,
                        sessions.c.revoked,
                        sessions.c.expires_at.label("session_expires"),
                    )
                    .join(sessions, sessions.c.id == refresh_tokens.c.session_id)
                    .where(refresh_tokens.c.token_hash == token_hash)
                )
            ).first()
            if row is None or row.expires_at < time.time():
                return None
            rec = SessionRecord(
                id=row.session_id,
                user_id=row.user_id,
                expires_at=row.session_expires,
                revoked=bool(row.revoked),
            )
            if row.used:
                return "reused", rec
            await conn.execute(
                refresh_tokens.update()
                .where(refresh_tokens.c.token_hash == token_hash)
                .values(used=True)
            )
            return "ok", rec

    async def add_ticket(self, ticket_hash: str, user_id: str, ttl: float) -> None:
        async with self._write.begin() as conn:
            await conn.execute(sa.delete(tickets).where(tickets.c.expires_at < time.time()))
            await conn.execute(
                tickets.insert().values(
                    ticket_hash=ticket_hash, user_id=user_id, expires_at=time.time() + ttl
                )
            )

    async def consume_ticket(self, ticket_hash: str) -> str | None:
        async with self._write.begin() as conn:
            row = (
                await conn.execute(
                    sa.delete(tickets)
                    .where(tickets.c.ticket_hash == ticket_hash)
                    .returning(tickets.c.user_id, tickets.c.expires_at)
                )
            ).first()
        if row is None or row.expires_at < time.time():
            return None
        return str(row.user_id)

    # rooms -------------------------------------------------------------------------------

    async def create_room(
        self, name: str, visibility: Visibility, creator: str, room_id: str | None = None
    ) -> Room:
        room = Room(
            id=room_id or new_id()[:16],
            name=name,
            visibility=visibility,
            created_by=creator,
            created_at=utc_now(),
        )
        async with self._write.begin() as conn:
            await conn.execute(
                rooms.insert().values(
                    id=room.id,
                    name=name,
                    visibility=visibility,
                    created_by=creator,
                    created_at=room.created_at,
                )
            )
            await conn.execute(
                members.insert().values(
                    room_id=room.id, user_id=creator, role="admin", joined_at=room.created_at
                )
            )
        return room

    async def enter_room(self, room_id: str, user_id: str) -> tuple[Room, bool]:
        async with self._write.begin() as conn:
            await self._ensure_users(conn, [user_id])
            created = await self._ensure_room(conn, room_id, user_id)
            row = (await conn.execute(sa.select(rooms).where(rooms.c.id == room_id))).one()
            joined = False
            if not created and row.visibility == "public":
                res = await conn.execute(
                    self._insert_ignore(members).values(
                        room_id=room_id, user_id=user_id, role="member", joined_at=utc_now()
                    )
                )
                joined = bool(res.rowcount)
        return _room(row), joined

    async def _ensure_users(self, conn: AsyncConnection, user_ids: Sequence[str]) -> None:
        now = utc_now()
        await conn.execute(
            self._insert_ignore(users),
            [{"id": u, "username": u, "password_hash": None, "created_at": now} for u in user_ids],
        )

    async def _ensure_room(self, conn: AsyncConnection, room_id: str, creator: str) -> bool:
        now = utc_now()
        res = await conn.execute(
            self._insert_ignore(rooms).values(
                id=room_id, name=room_id, visibility="public", created_by=creator, created_at=now
            )
        )
        created = bool(res.rowcount)
        if created:
            await conn.execute(
                members.insert().values(
                    room_id=room_id, user_id=creator, role="admin", joined_at=now
                )
            )
        return created

    async def room(self, room_id: str) -> Room | None:
        async with self._read.connect() as conn:
            row = (await conn.execute(sa.select(rooms).where(rooms.c.id == room_id))).first()
        return None if row is None else _room(row)

    async def membership(self, room_id: str, user_id: str) -> Role | None:
        async with self._read.connect() as conn:
            role = (
                await conn.execute(
                    sa.select(members.c.role).where(
                        members.c.room_id == room_id, members.c.user_id == user_id
                    )
                )
            ).scalar()
        return None if role is None else cast(Role, str(role))

    async def rooms_for(self, user_id: str) -> list[RoomView]:
        mine = (
            sa.select(members.c.room_id, members.c.role)
            .where(members.c.user_id == user_id)
            .subquery()
        )
        query = (
            sa.select(rooms, mine.c.role)
            .select_from(rooms.outerjoin(mine, mine.c.room_id == rooms.c.id))
            .where(sa.or_(mine.c.role.is_not(None), rooms.c.visibility == "public"))
            .order_by(rooms.c.created_at, rooms.c.id)
        )
        async with self._read.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [RoomView(room=_room(r), member=r.role is not None, role=r.role) for r in rows]

    async def add_member(self, room_id: str, user_id: str, role: Role = "member") -> bool:
        async with self._write.begin() as conn:
            res = await conn.execute(
                self._insert_ignore(members).values(
                    room_id=room_id, user_id=user_id, role=role, joined_at=utc_now()
                )
            )
        return bool(res.rowcount)

    async def remove_member(self, room_id: str, user_id: str) -> bool:
        async with self._write.begin() as conn:
            res = await conn.execute(
                sa.delete(members).where(members.c.room_id == room_id, members.c.user_id == user_id)
            )
        return bool(res.rowcount)

    async def members(self, room_id: str) -> list[Member]:
        query = (
            sa.select(members.c.user_id, users.c.username, members.c.role, members.c.joined_at)
            .join(users, users.c.id == members.c.user_id)
            .where(members.c.room_id == room_id)
            .order_by(members.c.joined_at, members.c.user_id)
        )
        async with self._read.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            Member(user_id=r.user_id, username=r.username, role=r.role, joined_at=r.joined_at)
            for r in rows
        ]

    # messages ----------------------------------------------------------------------------

    async def append_batch(self, items: Sequence[AppendRequest]) -> list[AppendResult]:
        try:
            async with self._write.begin() as conn:
                return await self._append(conn, items)
        except sa.exc.IntegrityError:
            # Another node stored the same client_msg_id between our check and our insert:
            # redo item by item, so the re-check finds it and only that item is affected.
            if len(items) == 1:
                async with self._write.begin() as conn:
                    return await self._append(conn, items)
            out: list[AppendResult] = []
            for item in items:
                out.extend(await self.append_batch([item]))
            return out

    async def _append(
        self, conn: AsyncConnection, items: Sequence[AppendRequest]
    ) -> list[AppendResult]:
        now = utc_now()
        new_users = sorted({it.message.user_id for it in items if it.create_user})
        if new_users:
            await self._ensure_users(conn, new_users)
        room_ids = {it.message.room_id for it in items}
        user_ids = {it.message.user_id for it in items}
        visibility: dict[str, str] = {
            r.id: r.visibility
            for r in (
                await conn.execute(
                    sa.select(rooms.c.id, rooms.c.visibility).where(rooms.c.id.in_(room_ids))
                )
            ).all()
        }
        created_rooms: set[str] = set()
        for it in items:
            rid = it.message.room_id
            if rid not in visibility and it.create_room:
                if await self._ensure_room(conn, rid, it.message.user_id):
                    created_rooms.add(rid)
                visibility[rid] = "public"
        membership = {
            (r.room_id, r.user_id)
            for r in (
                await conn.execute(
                    sa.select(members.c.room_id, members.c.user_id).where(
                        members.c.room_id.in_(room_ids), members.c.user_id.in_(user_ids)
                    )
                )
            ).all()
        }
        cmids = [it.message.client_msg_id for it in items if it.message.client_msg_id]
        stored: dict[tuple[str, str], Message] = {}
        if cmids:
            for row in (
                await conn.execute(sa.select(messages).where(messages.c.client_msg_id.in_(cmids)))
            ).all():
                stored[(row.user_id, row.client_msg_id)] = _message(row)

        results: list[AppendResult | None] = [None] * len(items)
        accepted: dict[str, list[int]] = defaultdict(list)
        first_in_batch: dict[tuple[str, str], int] = {}
        repeats: list[tuple[int, int]] = []
        joined: set[int] = set()
        for i, it in enumerate(items):
            m = it.message
            vis = visibility.get(m.room_id)
            if vis is None:
                results[i] = AppendResult(AppendOutcome.NO_ROOM)
                continue
            if (m.room_id, m.user_id) not in membership:
                if vis == "private":
                    results[i] = AppendResult(AppendOutcome.HIDDEN)
                    continue
                if not it.join_public:
                    results[i] = AppendResult(AppendOutcome.NOT_MEMBER)
                    continue
                await conn.execute(
                    self._insert_ignore(members).values(
                        room_id=m.room_id, user_id=m.user_id, role="member", joined_at=now
                    )
                )
                membership.add((m.room_id, m.user_id))
                joined.add(i)
            if m.client_msg_id:
                key = (m.user_id, m.client_msg_id)
                if key in stored:
                    results[i] = _repeat(stored[key], m)
                    continue
                if key in first_in_batch:
                    repeats.append((i, first_in_batch[key]))
                    continue
                first_in_batch[key] = i
            accepted[m.room_id].append(i)

        built: dict[int, Message] = {}
        rows: list[dict[str, Any]] = []
        for room_id, idxs in accepted.items():
            last = (
                await conn.execute(
                    rooms.update()
                    .where(rooms.c.id == room_id)
                    .values(last_seq=rooms.c.last_seq + len(idxs))
                    .returning(rooms.c.last_seq)
                )
            ).scalar_one()
            seq = int(last) - len(idxs)
            for i in idxs:
                seq += 1
                m = items[i].message
                msg = Message(
                    id=new_id(),
                    room_id=room_id,
                    seq=seq,
                    user_id=m.user_id,
                    username=m.username,
                    type=m.type,
                    text=m.text,
                    created_at=now,
                    timestamp=m.timestamp,
                    client_msg_id=m.client_msg_id,
                    file=m.file,
                )
                built[i] = msg
                rows.append(_row(msg))
                results[i] = AppendResult(
                    AppendOutcome.CREATED,
                    msg,
                    joined=i in joined,
                    room_created=room_id in created_rooms,
                )
        if rows:
            await conn.execute(messages.insert(), rows)
        for i, first in repeats:
            results[i] = _repeat(built[first], items[i].message)
        return [r for r in results if r is not None]

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
        async with self._read.connect() as conn:
            rows = (await conn.execute(query)).all()
        out = [_message(r) for r in rows]
        if after is None:
            out.reverse()
        return out

    async def message(self, message_id: str) -> Message | None:
        async with self._read.connect() as conn:
            row = (
                await conn.execute(sa.select(messages).where(messages.c.id == message_id))
            ).first()
        return None if row is None else _message(row)

    async def edit_message(self, message_id: str, text: str) -> Message | None:
        async with self._write.begin() as conn:
            row = (
                await conn.execute(
                    messages.update()
                    .where(messages.c.id == message_id, messages.c.deleted == sa.false())
                    .values(text=text, edited_at=utc_now())
                    .returning(*messages.c)
                )
            ).first()
        return None if row is None else _message(row)

    async def delete_message(self, message_id: str) -> Message | None:
        async with self._write.begin() as conn:
            row = (
                await conn.execute(
                    messages.update()
                    .where(messages.c.id == message_id)
                    .values(text="", file=None, deleted=True)
                    .returning(*messages.c)
                )
            ).first()
        return None if row is None else _message(row)

    async def oldest_seq(self, room_id: str) -> int | None:
        async with self._read.connect() as conn:
            value = (
                await conn.execute(
                    sa.select(sa.func.min(messages.c.seq)).where(messages.c.room_id == room_id)
                )
            ).scalar()
        return None if value is None else int(value)

    async def purge_older_than(self, days: int) -> int:
        cutoff = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        async with self._write.begin() as conn:
            res = await conn.execute(sa.delete(messages).where(messages.c.created_at < cutoff))
        return int(res.rowcount)


def _repeat(original: Message, new: Any) -> AppendResult:
    same = original.room_id == new.room_id and original.text == new.text
    return AppendResult(AppendOutcome.DUPLICATE if same else AppendOutcome.CONFLICT, original)


def _room(row: Any) -> Room:
    return Room(
        id=row.id,
        name=row.name,
        visibility=row.visibility,
        created_by=row.created_by,
        created_at=row.created_at,
        last_seq=int(row.last_seq),
    )


def _row(msg: Message) -> dict[str, Any]:
    return {
        "id": msg.id,
        "room_id": msg.room_id,
        "seq": msg.seq,
        "user_id": msg.user_id,
        "username": msg.username,
        "type": msg.type,
        "text": msg.text,
        "created_at": msg.created_at,
        "client_ts": None if msg.timestamp is None else _json_encode(msg.timestamp).decode(),
        "client_msg_id": msg.client_msg_id,
        "edited_at": None,
        "deleted": False,
        "file": None if msg.file is None else _json_encode(msg.file).decode(),
    }


def _message(row: Any) -> Message:
    return Message(
        id=row.id,
        room_id=row.room_id,
        seq=int(row.seq),
        user_id=row.user_id,
        username=row.username,
        type=row.type,
        text=row.text,
        created_at=row.created_at,
        timestamp=None if row.client_ts is None else _ts_decoder.decode(row.client_ts),
        client_msg_id=row.client_msg_id,
        edited_at=row.edited_at,
        deleted=bool(row.deleted),
        file=None if row.file is None else _file_decoder.decode(row.file),
    )
