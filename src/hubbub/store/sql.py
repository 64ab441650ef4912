"""The SQL store (SQLAlchemy Core): SQLite by default, PostgreSQL via asyncpg.

Every query is written once, as a plain function of a synchronous SQLAlchemy ``Connection``,
and run one of two ways:

* **SQLite**: in a thread, on the standard ``sqlite3`` driver. One writer thread owns the only
  writing connection (every write transaction is ``BEGIN IMMEDIATE``, so writers queue instead of
  failing with "database is locked"); a small pool of reader threads never waits for it (WAL).
  A whole transaction is one hop to a thread — async drivers pay one hop per DBAPI call, about
  forty per message batch, which measured ~4 ms of pure overhead per commit.
* **PostgreSQL**: through SQLAlchemy's asyncio engine (asyncpg), with ``run_sync``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hubbub.auth.names import username_key
from hubbub.changes import Change, Entry, LoggedMessage, Pending, merge
from hubbub.config import normalise_database_url
from hubbub.encoding import line_safe_json
from hubbub.errors import Unavailable
from hubbub.fulltext import Span, highlights
from hubbub.models import (
    FileInfo,
    FileRecord,
    Member,
    Message,
    Role,
    Room,
    User,
    Visibility,
    personal_channel,
    utc_now,
)
from hubbub.store import migrate
from hubbub.store import search as fts
from hubbub.store.base import (
    AppendOutcome,
    AppendRequest,
    AppendResult,
    RoomView,
    SessionRecord,
)
from hubbub.store.changelog import (
    insert_changes,
    lock_room,
    record,
    room_changes,
    take_positions,
    to_change,
    user_changes,
)
from hubbub.store.schema import (
    changes,
    counters,
    files,
    members,
    messages,
    reactions,
    refresh_tokens,
    rooms,
    sessions,
    tickets,
    users,
)

log = logging.getLogger("hubbub.store")

# The database is away (or too slow): the whole batch fails with 503, nothing is retried here.
_UNAVAILABLE = (
    Unavailable,
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    TimeoutError,
    OSError,
)
# SQLSTATE classes that mean "the server, not the statement": connection exception,
# insufficient resources, operator intervention (57P03 "the database system is starting up"
# while PostgreSQL restarts, which asyncpg raises and SQLAlchemy wraps as a plain DBAPIError).
_AWAY_STATES = ("08", "53", "57")


def store_away(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unreachable (503) rather than that a statement was
    wrong (a bug, or a bad value that is the caller's own 4xx)."""
    if isinstance(exc, _UNAVAILABLE):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        for cause in (exc.orig, getattr(exc.orig, "__cause__", None)):
            state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
            if isinstance(state, str) and state[:2] in _AWAY_STATES:
                return True
    return False


async def _away_is_503(work: Awaitable[T]) -> T:
    """A database that is away is ``Unavailable`` (503) for every caller, whatever exception
    the driver raised for it."""
    try:
        return await work
    except Unavailable:
        raise
    except Exception as exc:
        if store_away(exc):
            raise Unavailable(
                "the store is unavailable; try again", code="store_unavailable"
            ) from exc
        raise


T = TypeVar("T")
Work = Callable[[Connection], T]

_json_encode = msgspec.json.Encoder().encode
_file_decoder = msgspec.json.Decoder(FileInfo)
_ts_decoder = msgspec.json.Decoder(int | float | str | None)


def new_id() -> str:
    return uuid.uuid4().hex


class SqlStore:
    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL") -> None:
        url = normalise_database_url(url)
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self._sync_mode = sqlite_synchronous
        self._async: AsyncEngine | None = None
        self._snapshot_reads: AsyncEngine | None = None  # PostgreSQL: see below
        self._known_users: set[str] = set()  # trust-mode users known to exist
        self._writer: Engine | None = None
        self._reader: Engine | None = None
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            sync_url = parsed.set(drivername="sqlite+pysqlite")
            args = {"check_same_thread": False}
            self._writer = sa.create_engine(
                sync_url, pool_size=1, max_overflow=0, connect_args=args
            )
            self._reader = sa.create_engine(
                sync_url, pool_size=4, max_overflow=0, connect_args=args
            )
            self._configure_sqlite(self._writer, "BEGIN IMMEDIATE")
            self._configure_sqlite(self._reader, "BEGIN")
            self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="hubbub-db-write")
            self._read_threads = ThreadPoolExecutor(4, thread_name_prefix="hubbub-db-read")
        else:
            # Bounded waits: a database that stops answering fails requests (503) instead
            # of holding them; the pool reconnects when it is back.
            self._async = create_async_engine(
                url,
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=True,
                pool_timeout=10,
                connect_args={"timeout": 4, "command_timeout": 4},
            )
            # Reads that take more than one statement and must see one moment of the store
            # (a log page: two scans merged). PostgreSQL's default, READ COMMITTED, gives each
            # statement its own snapshot; SQLite's read transaction is one snapshot already.
            self._snapshot_reads = self._async.execution_options(isolation_level="REPEATABLE READ")

    def _configure_sqlite(self, engine: Engine, begin: str) -> None:
        sync_mode = self._sync_mode

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sync_mode}")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

    # running work ------------------------------------------------------------------------

    async def _write(self, work: Work[T]) -> T:
        """Run ``work`` in one write transaction (committed when it returns)."""
        return await _away_is_503(self._write_raw(work))

    async def _read(self, work: Work[T], *, snapshot: bool = False) -> T:
        """Run ``work`` on a reading connection; ``snapshot``: every statement of it sees the
        same moment of the store (see :meth:`room_log`)."""
        return await _away_is_503(self._read_raw(work, snapshot))

    async def _write_raw(self, work: Work[T]) -> T:
        if self._async is not None:
            async with self._async.begin() as conn:
                return await conn.run_sync(work)
        writer = self._writer
        assert writer is not None

        def run() -> T:
            with writer.begin() as conn:
                return work(conn)

        return await asyncio.get_running_loop().run_in_executor(self._write_thread, run)

    async def _read_raw(self, work: Work[T], snapshot: bool = False) -> T:
        if self._async is not None:
            engine = self._snapshot_reads if snapshot and self._snapshot_reads else self._async
            async with engine.connect() as conn:
                return await conn.run_sync(work)
        reader = self._reader
        assert reader is not None

        def run() -> T:
            with reader.connect() as conn:
                return work(conn)

        return await asyncio.get_running_loop().run_in_executor(self._read_threads, run)

    async def _first(self, stmt: Any) -> Any:
        return await self._read(lambda c: c.execute(stmt).first())

    async def _all(self, stmt: Any) -> list[Any]:
        return await self._read(lambda c: list(c.execute(stmt).all()))

    async def _change(self, stmt: Any) -> int:
        """One write statement; the number of rows it touched."""
        return await self._write(lambda c: int(c.execute(stmt).rowcount))

    async def _change_returning(self, stmt: Any) -> Any:
        return await self._write(lambda c: c.execute(stmt).first())

    # lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._async is not None:
            async with self._async.begin() as conn:
                await conn.run_sync(migrate.upgrade_connection)
        else:
            await self._write(migrate.upgrade_connection)

    async def close(self) -> None:
        if self._async is not None:
            await self._async.dispose()
            return
        for engine in (self._writer, self._reader):
            if engine is not None:
                engine.dispose()
        self._write_thread.shutdown(wait=True)
        self._read_threads.shutdown(wait=True)

    async def ping(self) -> None:
        await self._read(lambda c: c.execute(sa.text("SELECT 1")).scalar())

    def _insert_ignore(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

    # accounts ----------------------------------------------------------------------------

    async def create_user(self, username: str, password_hash: str | None) -> User:
        user = User(id=new_id(), username=username, created_at=utc_now())
        await self._change(
            users.insert().values(
                id=user.id,
                username=username,
                username_key=username_key(username) if password_hash is not None else None,
                password_hash=password_hash,
                created_at=user.created_at,
            )
        )
        return user

    async def ensure_user(self, user_id: str) -> None:
        await self._write(lambda c: self._ensure_users(c, [user_id]))

    async def user_by_name(self, username: str) -> tuple[User, str | None] | None:
        """The account named exactly ``username``, else the one whose name is the same
        regardless of case and Unicode form (``auth/names.py``)."""
        row = await self._first(
            sa.select(users)
            .where(
                sa.or_(users.c.username == username, users.c.username_key == username_key(username))
            )
            .order_by(sa.case((users.c.username == username, 0), else_=1))
            .limit(1)
        )
        if row is None:
            return None
        return User(id=row.id, username=row.username, created_at=row.created_at), row.password_hash

    async def user_by_id(self, user_id: str) -> User | None:
        row = await self._first(sa.select(users).where(users.c.id == user_id))
        if row is None:
            return None
        return User(id=row.id, username=row.username, created_at=row.created_at)

    async def create_session(self, user_id: str, ttl: float) -> SessionRecord:
        now = time.time()
        rec = SessionRecord(id=new_id(), user_id=user_id, expires_at=now + ttl, revoked=False)
        await self._change(
            sessions.insert().values(
                id=rec.id, user_id=user_id, created_at=now, expires_at=rec.expires_at
            )
        )
        return rec

    async def session(self, session_id: str) -> SessionRecord | None:
        row = await self._first(sa.select(sessions).where(sessions.c.id == session_id))
        if row is None:
            return None
        return SessionRecord(
            id=row.id, user_id=row.user_id, expires_at=row.expires_at, revoked=bool(row.revoked)
        )

    async def password_hash(self, user_id: str) -> str | None:
        row = await self._first(sa.select(users.c.password_hash).where(users.c.id == user_id))
        return None if row is None else cast("str | None", row.password_hash)

    async def revoke_session(self, session_id: str) -> None:
        def work(conn: Connection) -> None:
            conn.execute(sessions.update().where(sessions.c.id == session_id).values(revoked=True))
            conn.execute(sa.delete(tickets).where(tickets.c.session_id == session_id))

        await self._write(work)

    @staticmethod
    def _revoke_sessions(conn: Connection, user_id: str, keep: str | None) -> list[str]:
        """Revoke the user's live sessions but ``keep``; the ids revoked."""
        live = sa.and_(
            sessions.c.user_id == user_id,
            sessions.c.revoked == sa.false(),
            sessions.c.expires_at >= time.time(),
        )
        if keep is not None:
            live = sa.and_(live, sessions.c.id != keep)
        ids = [str(r.id) for r in conn.execute(sa.select(sessions.c.id).where(live)).all()]
        if ids:
            conn.execute(sessions.update().where(sessions.c.id.in_(ids)).values(revoked=True))
            conn.execute(sa.delete(tickets).where(tickets.c.session_id.in_(ids)))
        return ids

    async def revoke_sessions(self, user_id: str, keep: str | None = None) -> list[str]:
        return await self._write(lambda c: self._revoke_sessions(c, user_id, keep))

    async def set_password(
        self, user_id: str, password_hash: str, keep: str | None = None
    ) -> list[str]:
        def work(conn: Connection) -> list[str]:
            conn.execute(
                users.update().where(users.c.id == user_id).values(password_hash=password_hash)
            )
            return self._revoke_sessions(conn, user_id, keep)

        return await self._write(work)

    async def add_refresh_token(self, token_hash: str, session_id: str, ttl: float) -> None:
        await self._change(
            refresh_tokens.insert().values(
                token_hash=token_hash, session_id=session_id, expires_at=time.time() + ttl
            )
        )

    async def use_refresh_token(self, token_hash: str) -> tuple[str, SessionRecord] | None:
        def work(conn: Connection) -> tuple[str, SessionRecord] | None:
            row = conn.execute(
                sa.select(
                    refresh_tokens,
                    sessions.c.user_id,
                    sessions.c.revoked,
                    sessions.c.expires_at.label("session_expires"),
                )
                .join(sessions, sessions.c.id == refresh_tokens.c.session_id)
                .where(refresh_tokens.c.token_hash == token_hash)
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
            conn.execute(
                refresh_tokens.update()
                .where(refresh_tokens.c.token_hash == token_hash)
                .values(used=True)
            )
            return "ok", rec

        return await self._write(work)

    async def add_ticket(
        self, ticket_hash: str, user_id: str, session_id: str | None, ttl: float
    ) -> None:
        def work(conn: Connection) -> None:
            now = time.time()
            conn.execute(sa.delete(tickets).where(tickets.c.expires_at < now))
            conn.execute(
                tickets.insert().values(
                    ticket_hash=ticket_hash,
                    user_id=user_id,
                    session_id=session_id,
                    expires_at=now + ttl,
                )
            )

        await self._write(work)

    async def consume_ticket(self, ticket_hash: str) -> tuple[str, str | None] | None:
        def work(conn: Connection) -> tuple[str, str | None] | None:
            row = conn.execute(
                sa.delete(tickets)
                .where(tickets.c.ticket_hash == ticket_hash)
                .returning(tickets.c.user_id, tickets.c.session_id, tickets.c.expires_at)
            ).first()
            now = time.time()
            if row is None or row.expires_at < now:
                return None
            if row.session_id is not None:
                live = conn.execute(
                    sa.select(sessions.c.id).where(
                        sessions.c.id == row.session_id,
                        sessions.c.revoked == sa.false(),
                        sessions.c.expires_at >= now,
                    )
                ).first()
                if live is None:
                    return None
            return str(row.user_id), None if row.session_id is None else str(row.session_id)

        return await self._write(work)

    # rooms -------------------------------------------------------------------------------

    async def create_room(
        self,
        name: str,
        visibility: Visibility,
        creator: str,
        room_id: str | None = None,
        creator_name: str | None = None,
    ) -> tuple[Room, list[Change]]:
        """The room, its creator as admin, and the log of both (``member_joined`` in the room,
        ``room_added`` for the creator)."""
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
            who = creator_name or self._username(conn, creator)
            return record(conn, room.created_at, _entered(room, creator, who))

        return room, await self._write(work)

    async def enter_room(
        self, room_id: str, user_id: str, username: str | None = None
    ) -> tuple[Room, list[Change]]:
        return (await self.enter_rooms([(room_id, user_id, username or user_id)]))[0]

    async def enter_rooms(
        self, items: Sequence[tuple[str, str, str]]
    ) -> list[tuple[Room, list[Change]]]:
        """Trust mode's first use for many ``(room_id, user_id, username)`` at once, in one
        transaction: users, public rooms and memberships as needed, and their log. Per item:
        the room and the log of that item's user joining (empty if they were in already, or
        for a private room they are not in)."""

        def work(conn: Connection) -> list[tuple[Room, list[Change]]]:
            now = utc_now()
            self._ensure_users(conn, sorted({u for _, u, _ in items}))
            room_ids = sorted({r for r, _, _ in items})
            existing = {
                r.id for r in conn.execute(sa.select(rooms.c.id).where(rooms.c.id.in_(room_ids)))
            }
            creators: dict[str, str] = {}
            for r, u, _ in items:
                if r not in existing:
                    creators.setdefault(r, u)
            if creators:
                conn.execute(
                    self._insert_ignore(rooms),
                    [
                        {
                            "id": r,
                            "name": r,
                            "visibility": "public",
                            "created_by": u,
                            "created_at": now,
                        }
                        for r, u in creators.items()
                    ],
                )
            query = sa.select(rooms).where(rooms.c.id.in_(room_ids)).order_by(rooms.c.id)
            if self.dialect == "postgresql":
                query = query.with_for_update()
            found = {row.id: row for row in conn.execute(query).all()}
            created = {
                r
                for r, u in creators.items()
                if r in found and found[r].created_by == u and int(found[r].last_rev) == 0
            }
            users_in = sorted({u for _, u, _ in items})
            already = {
                (m.room_id, m.user_id)
                for m in conn.execute(
                    sa.select(members.c.room_id, members.c.user_id).where(
                        members.c.room_id.in_(room_ids), members.c.user_id.in_(users_in)
                    )
                ).all()
            }
            joining: dict[tuple[str, str], tuple[str, str]] = {}  # (room, user) → role, name
            for r, u, name in items:
                row = found.get(r)
                if row is None or (r, u) in already or (r, u) in joining:
                    continue
                if r in created and creators[r] == u:
                    joining[(r, u)] = ("admin", name)
                elif row.visibility == "public":
                    joining[(r, u)] = ("member", name)
            if joining:
                conn.execute(
                    members.insert(),
                    [
                        {"room_id": r, "user_id": u, "role": role, "joined_at": now}
                        for (r, u), (role, _) in joining.items()
                    ],
                )
            pending: list[Pending] = []
            for (r, u), (_, name) in joining.items():
                pending += _entered(_room(found[r]), u, name)
            logged = record(conn, now, pending)
            per_pair = {pair: logged[2 * i : 2 * i + 2] for i, pair in enumerate(joining)}
            out: list[tuple[Room, list[Change]]] = []
            for r, u, _ in items:
                row = found.get(r)
                assert row is not None  # created above if it was missing
                out.append((_room(row), per_pair.pop((r, u), [])))
            return out

        return await self._write(work)

    def _username(self, conn: Connection, user_id: str) -> str:
        name = conn.execute(sa.select(users.c.username).where(users.c.id == user_id)).scalar()
        return str(name) if name is not None else user_id

    def _remember_users(self, items: Sequence[AppendRequest]) -> None:
        if len(self._known_users) > 100_000:
            self._known_users.clear()
        self._known_users.update(it.message.user_id for it in items if it.create_user)

    def _ensure_users(self, conn: Connection, user_ids: Sequence[str]) -> None:
        now = utc_now()
        conn.execute(
            self._insert_ignore(users),
            [{"id": u, "username": u, "password_hash": None, "created_at": now} for u in user_ids],
        )

    async def room(self, room_id: str) -> Room | None:
        row = await self._first(sa.select(rooms).where(rooms.c.id == room_id))
        return None if row is None else _room(row)

    async def room_for(self, room_id: str, user_id: str) -> tuple[Room, Role | None] | None:
        """The room and ``user_id``'s role in it (``None``: not a member), in one query;
        ``None`` if there is no such room."""
        mine = (
            sa.select(members.c.role)
            .where(members.c.room_id == rooms.c.id, members.c.user_id == user_id)
            .scalar_subquery()
        )
        row = await self._first(sa.select(rooms, mine.label("role")).where(rooms.c.id == room_id))
        if row is None:
            return None
        return _room(row), None if row.role is None else cast(Role, str(row.role))

    async def membership(self, room_id: str, user_id: str) -> Role | None:
        row = await self._first(
            sa.select(members.c.role).where(
                members.c.room_id == room_id, members.c.user_id == user_id
            )
        )
        return None if row is None else cast(Role, str(row.role))

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
                    for m in _with_reactions(
                        conn, conn.execute(sa.select(messages).where(messages.c.id.in_(ids))).all()
                    )
                }
                if ids
                else {}
            )
            return [
                RoomView(
                    room=_room(r),
                    member=r.role is not None,
                    role=r.role,
                    unread=None if r.role is None else max(0, r.last_seq - r.last_read_seq),
                    last_message=lasts.get(r.last_id),
                )
                for r in rows
            ]

        return await self._read(work)

    async def add_member(self, room_id: str, user_id: str, role: Role = "member") -> list[Change]:
        """Add a member; the log of it (empty if they already were one)."""

        def work(conn: Connection) -> list[Change]:
            now = utc_now()
            lock_room(conn, room_id)
            res = conn.execute(
                self._insert_ignore(members).values(
                    room_id=room_id, user_id=user_id, role=role, joined_at=now
                )
            )
            if not res.rowcount:
                return []
            row = conn.execute(sa.select(rooms).where(rooms.c.id == room_id)).one()
            return record(conn, now, _entered(_room(row), user_id, self._username(conn, user_id)))

        return await self._write(work)

    async def remove_member(self, room_id: str, user_id: str) -> list[Change]:
        """Remove a member; the log of it (empty if they were not one)."""

        def work(conn: Connection) -> list[Change]:
            lock_room(conn, room_id)
            res = conn.execute(
                sa.delete(members).where(members.c.room_id == room_id, members.c.user_id == user_id)
            )
            if not res.rowcount:
                return []
            who = {
                "room_id": room_id,
                "user_id": user_id,
                "username": self._username(conn, user_id),
            }
            return record(
                conn,
                utc_now(),
                [
                    Pending(room_id, "member_left", who, user_id),
                    Pending(personal_channel(user_id), "room_removed", {"room_id": room_id}),
                ],
            )

        return await self._write(work)

    async def update_room(
        self, room_id: str, *, name: str | None, visibility: Visibility | None
    ) -> tuple[Room, list[Change]] | None:
        """Rename or change visibility; the room after and the log (empty if nothing changed)."""

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
                return _room(row), []
            conn.execute(rooms.update().where(rooms.c.id == room_id).values(**values))
            room = _room(conn.execute(sa.select(rooms).where(rooms.c.id == room_id)).one())
            return room, record(conn, utc_now(), [Pending(room_id, "room_updated", room)])

        return await self._write(work)

    async def members(self, room_id: str) -> list[Member]:
        query = (
            sa.select(members.c.user_id, users.c.username, members.c.role, members.c.joined_at)
            .join(users, users.c.id == members.c.user_id)
            .where(members.c.room_id == room_id)
            .order_by(members.c.joined_at, members.c.user_id)
        )
        rows = await self._all(query)
        return [
            Member(user_id=r.user_id, username=r.username, role=r.role, joined_at=r.joined_at)
            for r in rows
        ]

    # messages ----------------------------------------------------------------------------

    async def append_batch(self, items: Sequence[AppendRequest]) -> list[AppendResult]:
        """One transaction for the batch. If it fails for a reason that is not the database
        being away (a constraint, a bad value, a trigger), the batch is redone item by item so
        the failure stays with the item that caused it (``REJECTED``); the others are stored."""
        try:
            results = await self._write(lambda c: self._append(c, items))
            self._remember_users(items)
            return results
        except _UNAVAILABLE:
            raise
        except Exception as exc:
            if len(items) > 1:
                out: list[AppendResult] = []
                for item in items:
                    out.extend(await self.append_batch([item]))
                return out
            if isinstance(exc, sa.exc.IntegrityError):
                # Perhaps another node stored the same client_msg_id between our check and our
                # insert: once more, and the re-check finds it.
                try:
                    return await self._write(lambda c: self._append(c, items))
                except _UNAVAILABLE:
                    raise
                except Exception as again:
                    exc = again
            log.warning("message of %s refused by the store: %s", items[0].message.user_id, exc)
            return [AppendResult(AppendOutcome.REJECTED)]

    def _append(self, conn: Connection, items: Sequence[AppendRequest]) -> list[AppendResult]:
        """One round trip per kind of statement, whatever the batch size (see base.py)."""
        now = utc_now()
        known = self._known_users
        new_users = sorted({it.message.user_id for it in items if it.create_user} - known)
        if new_users:
            self._ensure_users(conn, new_users)  # remembered once committed: users stay
        room_ids = sorted({it.message.room_id for it in items})
        locked: dict[str, Any] = {}
        state = self._lock_rooms(conn, room_ids, locked)
        creators: dict[str, str] = {}
        for it in items:
            rid = it.message.room_id
            if rid not in state and it.create_room:
                creators.setdefault(rid, it.message.user_id)
        created_rooms: set[str] = set()
        if creators:
            conn.execute(
                self._insert_ignore(rooms),
                [
                    {
                        "id": rid,
                        "name": rid,
                        "visibility": "public",
                        "created_by": user,
                        "created_at": now,
                    }
                    for rid, user in creators.items()
                ],
            )
            fresh = self._lock_rooms(conn, sorted(creators), locked)
            created_rooms = {rid for rid, (_, _, rev) in fresh.items() if rev == 0}
            if created_rooms:
                conn.execute(
                    self._insert_ignore(members),
                    [
                        {"room_id": r, "user_id": creators[r], "role": "admin", "joined_at": now}
                        for r in sorted(created_rooms)
                    ],
                )
            state.update(fresh)
        user_ids = {it.message.user_id for it in items}
        membership = {
            (r.room_id, r.user_id)
            for r in (
                conn.execute(
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
                conn.execute(sa.select(messages).where(messages.c.client_msg_id.in_(cmids)))
            ).all():
                stored[(row.user_id, row.client_msg_id)] = _message(row)

        results: list[AppendResult | None] = [None] * len(items)
        accepted: dict[str, list[int]] = defaultdict(list)
        first_in_batch: dict[tuple[str, str], int] = {}
        repeats: list[tuple[int, int]] = []
        joins: dict[tuple[str, str], int] = {}
        for i, it in enumerate(items):
            m = it.message
            room_state = state.get(m.room_id)
            if room_state is None:
                results[i] = AppendResult(AppendOutcome.NO_ROOM)
                continue
            key_member = (m.room_id, m.user_id)
            if key_member not in membership:
                if room_state[0] == "private":
                    results[i] = AppendResult(AppendOutcome.HIDDEN)
                    continue
                if not it.join_public:
                    results[i] = AppendResult(AppendOutcome.NOT_MEMBER)
                    continue
                membership.add(key_member)
                joins[key_member] = i
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
        if joins:
            conn.execute(
                self._insert_ignore(members),
                [
                    {"room_id": r, "user_id": u, "role": "member", "joined_at": now}
                    for r, u in joins
                ],
            )

        # The log, in publish order: each item's membership changes (trust mode's first use),
        # then its message. Positions and revs follow that order.
        logged: dict[int, list[Pending]] = defaultdict(list)
        if joins or created_rooms:
            room_rows = {r: _room(row) for r, row in locked.items()}
            entering = [(r, creators[r]) for r in sorted(created_rooms)] + list(joins)
            for r, u in entering:
                found = joins.get((r, u))
                i = (
                    found
                    if found is not None
                    else next(j for j, it in enumerate(items) if it.message.room_id == r)
                )
                logged[i] += _entered(room_rows[r], u, items[i].message.username)

        built: dict[int, Message] = {}
        rows: list[dict[str, Any]] = []
        heads: list[dict[str, Any]] = []
        for room_id, idxs in accepted.items():
            seq = state[room_id][1]
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
            heads.append({"rid": room_id, "head": seq})
        order = sorted(set(built) | set(logged))
        total = len(built) + sum(len(v) for v in logged.values())
        if total:
            position = take_positions(conn, total)
            revs = {r: v[2] for r, v in state.items()}
            done: list[Change] = []
            item_changes: dict[int, tuple[Change, ...]] = {}
            item_rev: dict[int, tuple[int, int]] = {}
            for i in order:
                mine: list[Change] = []
                for p in logged.get(i, ()):
                    rev = None
                    if not p.room_id.startswith("@"):
                        rev = revs[p.room_id] = revs[p.room_id] + 1
                    mine.append(
                        Change(p.room_id, p.name, line_safe_json(p.payload), position, rev, p.ref)
                    )
                    position += 1
                done += mine
                item_changes[i] = tuple(mine)
                if i in built:
                    rid = built[i].room_id
                    revs[rid] += 1
                    item_rev[i] = (position, revs[rid])
                    position += 1
            insert_changes(conn, now, done)
            for i in order:
                if i in built:
                    msg = built[i]
                    pos, rev = item_rev[i]
                    rows.append(_row(msg, pos, rev))
                    results[i] = AppendResult(
                        AppendOutcome.CREATED,
                        msg,
                        position=pos,
                        room_created=msg.room_id in created_rooms,
                        rev=rev,
                        changes=item_changes[i],
                    )
                elif item_changes.get(i) and (earlier := results[i]) is not None:
                    results[i] = msgspec.structs.replace(earlier, changes=item_changes[i])
            for head in heads:
                head["rev"] = revs[head["rid"]]
            touched = {c.room_id for c in done if c.rev is not None} - {h["rid"] for h in heads}
            heads += [{"rid": r, "head": state[r][1], "rev": revs[r]} for r in sorted(touched)]
            conn.execute(_SET_HEAD, heads)
            if rows:
                conn.execute(messages.insert(), rows)
                conn.execute(
                    _READ_UP_TO,
                    [{"rid": m.room_id, "uid": m.user_id, "seq": m.seq} for m in built.values()],
                )
        for i, first in repeats:
            results[i] = _repeat(built[first], items[i].message)
        return [r for r in results if r is not None]

    def _lock_rooms(
        self, conn: Connection, room_ids: Sequence[str], rows: dict[str, Any] | None = None
    ) -> dict[str, tuple[str, int, int]]:
        """Visibility, ``last_seq`` and ``last_rev`` of the rooms, locked until commit: the
        write transaction is ``BEGIN IMMEDIATE`` on SQLite (one writer at a time), ``FOR
        UPDATE`` on PostgreSQL, so nobody else can take the same numbers between this read and
        our update."""
        query = sa.select(rooms).where(rooms.c.id.in_(room_ids))
        if self.dialect == "postgresql":
            query = query.with_for_update()
        found = conn.execute(query).all()
        if rows is not None:
            rows.update((r.id, r) for r in found)  # the whole rows, for the log's room objects
        return {r.id: (r.visibility, int(r.last_seq), int(r.last_rev)) for r in found}

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
        out = await self._read(lambda c: _with_reactions(c, c.execute(query).all()))
        if after is None:
            out.reverse()
        return out

    async def message(self, message_id: str) -> Message | None:
        query = sa.select(messages).where(messages.c.id == message_id)
        found = await self._read(lambda c: _with_reactions(c, c.execute(query).all()))
        return found[0] if found else None

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
            msg = _with_reactions(conn, rows)[0]
            return msg, record(conn, utc_now(), [Pending(msg.room_id, name, msg, msg.id)])

        return await self._write(work)

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
        """Text and file go, reactions go, the seq stays."""
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
        """Add or remove one user's reaction; the log of it (empty if nothing changed)."""
        if add:
            stmt: Any = self._insert_ignore(reactions).values(
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

        return await self._write(work)

    async def mark_read(self, room_id: str, user_id: str, seq: int) -> tuple[int, list[Change]]:
        """Move the read pointer forward to ``seq``; the pointer after, and the log of the move
        (a personal ``read`` change, so the user's other devices follow)."""

        def work(conn: Connection) -> tuple[int, list[Change]]:
            lock_room(conn, room_id)
            moved = conn.execute(_READ_UP_TO, {"rid": room_id, "uid": user_id, "seq": seq})
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

        return await self._write(work)

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
            found = _logged(conn, conn.execute(query).all())
            return merge(
                found, room_changes(conn, room_id, after, before, limit), limit, by_position=False
            )

        return await self._read(work, snapshot=True)

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
                found = _logged(conn, conn.execute(query).all())
            changed = user_changes(
                conn, user_id, room_ids, after, limit, personal=only_room is None
            )
            return merge(found, changed, limit, by_position=True)

        return await self._read(work, snapshot=True)  # one moment, as room_log

    async def rev_at(self, room_id: str, seq: int) -> int:
        """The ``rev`` of message ``seq`` (or of the newest one before it): where a client that
        last saw message ``seq`` stands in the room's log."""
        row = await self._first(
            sa.select(messages.c.rev)
            .where(messages.c.room_id == room_id, messages.c.seq <= seq)
            .order_by(messages.c.seq.desc())
            .limit(1)
        )
        return 0 if row is None or row.rev is None else int(row.rev)

    async def position(self) -> int:
        """The newest stream position handed out."""
        row = await self._first(sa.select(counters.c.value).where(counters.c.name == "messages"))
        return 0 if row is None else int(row.value)

    async def log_between(self, after: int, through: int, channels: Sequence[str]) -> list[Entry]:
        """Range scans on the positions (``messages.gseq``, the ``changes`` key), filtered by
        channel: settles a gap the hub saw in live stream positions."""
        rooms_only = [c for c in channels if not c.startswith("@")]

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
                    found += _logged(conn, conn.execute(query).all())
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
        return await self._read(work)

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

        return await self._read(work)

    async def heads(self, room_ids: list[str]) -> dict[str, int]:
        """Each room's newest ``rev`` (the head of its log), in one query."""
        rows = await self._all(
            sa.select(rooms.c.id, rooms.c.last_rev).where(rooms.c.id.in_(room_ids))
        )
        return {r.id: int(r.last_rev) for r in rows}

    async def room_ids_of(self, user_id: str) -> list[str]:
        rows = await self._all(sa.select(members.c.room_id).where(members.c.user_id == user_id))
        return [r.room_id for r in rows]

    async def oldest_seq(self, room_id: str) -> int | None:
        row = await self._first(
            sa.select(sa.func.min(messages.c.seq).label("oldest")).where(
                messages.c.room_id == room_id
            )
        )
        return None if row is None or row.oldest is None else int(row.oldest)

    async def purge_older_than(self, days: int) -> tuple[int, list[str]]:
        """Delete messages (with their reactions and file records) older than ``days``, and
        the change log as old; returns how many messages went and the ids of the files to
        remove from the FileStore. (A stream resuming from before that gets ``reset``.)"""
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

        return await self._write(work)

    # search ------------------------------------------------------------------------------

    async def search(
        self,
        user_id: str,
        query_terms: Sequence[str],
        *,
        room_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[tuple[Message, list[Span]]], str | None]:
        """Best matches first, each with its highlights; and the next page's cursor, if any.

        One query over every room ``user_id`` may read (see ``store/search.py``)."""
        if cursor is None:
            offset, snapshot = 0, utc_now()
        else:
            offset, snapshot = fts.decode_cursor(cursor)

        def work(conn: Connection) -> list[Message]:
            rows = fts.search_rows(
                conn,
                self.dialect,
                user_id=user_id,
                terms=query_terms,
                room_id=room_id,
                limit=limit + 1,
                offset=offset,
                snapshot=snapshot,
            )
            return _with_reactions(conn, rows)

        found = await self._read(work)
        more = len(found) > limit and offset + limit <= fts.MAX_OFFSET
        page = found[:limit]
        hits = [(m, highlights(m.text, query_terms)) for m in page]
        return hits, fts.encode_cursor(offset + limit, snapshot) if more else None

    # files -------------------------------------------------------------------------------

    async def add_file(self, record: FileRecord) -> None:
        await self._change(
            files.insert().values(
                id=record.id,
                room_id=record.room_id,
                user_id=record.user_id,
                name=record.name,
                size=record.size,
                content_type=record.content_type,
                created_at=record.created_at,
            )
        )

    async def file(self, file_id: str) -> FileRecord | None:
        row = await self._first(sa.select(files).where(files.c.id == file_id))
        if row is None:
            return None
        return FileRecord(
            id=row.id,
            room_id=row.room_id,
            user_id=row.user_id,
            name=row.name,
            size=int(row.size),
            content_type=row.content_type,
            created_at=row.created_at,
        )

    async def delete_file(self, file_id: str) -> bool:
        return bool(await self._change(sa.delete(files).where(files.c.id == file_id)))


_SET_HEAD = (
    rooms.update()
    .where(rooms.c.id == sa.bindparam("rid"))
    .values(last_seq=sa.bindparam("head"), last_rev=sa.bindparam("rev"))
)
# A read pointer only moves forward.
_READ_UP_TO = (
    members.update()
    .where(
        members.c.room_id == sa.bindparam("rid"),
        members.c.user_id == sa.bindparam("uid"),
        members.c.last_read_seq < sa.bindparam("seq"),
    )
    .values(last_read_seq=sa.bindparam("seq"))
)


def _logged(conn: Connection, rows: Sequence[Any]) -> list[LoggedMessage]:
    return [
        LoggedMessage(m, int(r.gseq or 0), int(r.rev or 0))
        for m, r in zip(_with_reactions(conn, rows), rows, strict=True)
    ]


def _entered(room: Room, user_id: str, username: str) -> list[Pending]:
    """The log of a user entering a room: to the room, and to the user's own streams."""
    who = {"room_id": room.id, "user_id": user_id, "username": username}
    return [
        Pending(room.id, "member_joined", who, user_id),
        Pending(personal_channel(user_id), "room_added", room),
    ]


def _with_reactions(conn: Connection, rows: Sequence[Any]) -> list[Message]:
    """Messages with their reactions aggregated: one query for the whole page."""
    ids = [r.id for r in rows]
    grouped: dict[str, dict[str, list[str]]] = defaultdict(dict)
    if ids:
        found = conn.execute(
            sa.select(reactions.c.message_id, reactions.c.reaction, reactions.c.user_id)
            .where(reactions.c.message_id.in_(ids))
            .order_by(reactions.c.created_at, reactions.c.user_id)
        ).all()
        for r in found:
            grouped[r.message_id].setdefault(r.reaction, []).append(r.user_id)
    return [_message(r, grouped.get(r.id)) for r in rows]


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


def _row(msg: Message, position: int, rev: int) -> dict[str, Any]:
    return {
        "gseq": position,
        "rev": rev,
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


def _message(row: Any, reacted: dict[str, list[str]] | None = None) -> Message:
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
        reactions=reacted or {},
        file=None if row.file is None else _file_decoder.decode(row.file),
    )
