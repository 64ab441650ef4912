"""The database every SQL role shares: engines, the two ways work is run, and what "the
database is away" means.

Every query is written once, as a plain function of a synchronous SQLAlchemy ``Connection``,
and run one of two ways:

* **SQLite**: in a thread, on the standard ``sqlite3`` driver. One writer thread owns the only
  writing connection (every write transaction is ``BEGIN IMMEDIATE``, so writers queue instead of
  failing with "database is locked"); a small pool of reader threads never waits for it (WAL).
  A whole transaction is one hop to a thread — async drivers pay one hop per DBAPI call, about
  forty per message batch, which measured ~4 ms of pure overhead per commit.
* **PostgreSQL**: through SQLAlchemy's asyncio engine (asyncpg), with ``run_sync``.

The send path on SQLite goes one step lower (``write_driver``): its transaction runs on the
writer's ``sqlite3`` connection itself — the same connection the writer engine hands out, so
there is still one writing connection, used by one thread.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from hubbub.config import normalise_database_url
from hubbub.errors import Unavailable
from hubbub.store import migrate

T = TypeVar("T")
Work = Callable[[Connection], T]

# The database is away (or too slow): the whole batch fails with 503, nothing is retried here.
UNAVAILABLE = (
    Unavailable,
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sqlite3.OperationalError,  # the send path's own, on the driver (SQLAlchemy wraps the same)
    sqlite3.InterfaceError,
    TimeoutError,
    OSError,
)
# A constraint refused a row: the driver's own (the SQLite send path) or SQLAlchemy's.
INTEGRITY = (sa.exc.IntegrityError, sqlite3.IntegrityError)
# SQLSTATE classes that mean "the server, not the statement": connection exception,
# insufficient resources, operator intervention (57P03 "the database system is starting up"
# while PostgreSQL restarts, which asyncpg raises and SQLAlchemy wraps as a plain DBAPIError).
_AWAY_STATES = ("08", "53", "57")


def store_away(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unreachable (503) rather than that a statement was
    wrong (a bug, or a bad value that is the caller's own 4xx)."""
    if isinstance(exc, UNAVAILABLE):
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


def _set_pragmas(dbapi_conn: Any, sync_mode: str) -> None:
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA synchronous={sync_mode}")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def json_array(values: Sequence[Any]) -> str:
    """Many keys as one parameter (SQLite: ``IN (SELECT value FROM json_each(?))``), so a
    statement's text, and its prepared form, is the same whatever their number."""
    return msgspec.json.encode(list(values)).decode()


def new_id() -> str:
    return uuid.uuid4().hex


def new_message_id() -> str:
    """32 hex digits like :func:`new_id`, but time-ordered: a 48-bit millisecond clock, then 80
    random bits. New messages land at the right edge of the primary key's B-tree instead of on
    a random page (measured: ~19 µs less writer CPU per stored message at 10k messages, more
    as the table grows); still unguessable."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


class Database:
    """One database and the runners every role uses: one place decides threads, pools,
    transactions and snapshots, so a role's method is only its statements."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL") -> None:
        url = normalise_database_url(url)
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self._sync_mode = sqlite_synchronous
        self._async: AsyncEngine | None = None
        self._snapshot_reads: AsyncEngine | None = None  # PostgreSQL: see below
        self._writer: Engine | None = None
        self._reader: Engine | None = None
        self._driver: sqlite3.Connection | None = None  # SQLite: the one writing connection
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            sync_url = parsed.set(drivername="sqlite+pysqlite")
            args = {"check_same_thread": False}
            driver = sqlite3.connect(
                parsed.database or ":memory:", check_same_thread=False, isolation_level=None
            )
            _set_pragmas(driver, sqlite_synchronous)
            self._driver = driver
            # The writer engine hands out that same connection (StaticPool): one writer.
            self._writer = sa.create_engine(sync_url, poolclass=StaticPool, creator=lambda: driver)
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
            _set_pragmas(dbapi_conn, sync_mode)

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

    # running work ------------------------------------------------------------------------

    async def write(self, work: Work[T]) -> T:
        """Run ``work`` in one write transaction (committed when it returns)."""
        return await _away_is_503(self._write_raw(work))

    async def write_driver(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """SQLite only: run ``work`` in one write transaction (``BEGIN IMMEDIATE``, committed
        when it returns) on the writer's ``sqlite3`` connection, in the writer thread."""
        return await _away_is_503(self._write_driver(work))

    async def _write_driver(self, work: Callable[[sqlite3.Connection], T]) -> T:
        driver = self._driver
        assert driver is not None

        def run() -> T:
            driver.execute("BEGIN IMMEDIATE")
            try:
                out = work(driver)
                driver.execute("COMMIT")
            except BaseException:
                if driver.in_transaction:
                    driver.rollback()
                raise
            return out

        return await asyncio.get_running_loop().run_in_executor(self._write_thread, run)

    async def read(self, work: Work[T], *, snapshot: bool = False) -> T:
        """Run ``work`` on a reading connection; ``snapshot``: every statement of it sees the
        same moment of the store (see ``SqlChangeLog.room_log``)."""
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

    @property
    def raw_reads(self) -> bool:
        """Whether :meth:`read_driver` is there (SQLite)."""
        return self._reader is not None

    async def read_driver(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """SQLite only: run ``work`` on a reading connection's own ``sqlite3`` connection, in
        one read transaction (one snapshot), without SQLAlchemy's per-statement work — for the
        lookups every connect makes (``SqlLookups``)."""
        return await _away_is_503(self._read_driver(work))

    async def _read_driver(self, work: Callable[[sqlite3.Connection], T]) -> T:
        reader = self._reader
        assert reader is not None

        def run() -> T:
            with reader.connect() as conn:
                raw = conn.connection.driver_connection
                assert isinstance(raw, sqlite3.Connection)
                raw.execute("BEGIN")
                try:
                    return work(raw)
                finally:
                    raw.execute("ROLLBACK")

        return await asyncio.get_running_loop().run_in_executor(self._read_threads, run)

    async def first(self, stmt: Any) -> Any:
        return await self.read(lambda c: c.execute(stmt).first())

    async def all(self, stmt: Any) -> list[Any]:
        return await self.read(lambda c: list(c.execute(stmt).all()))

    async def change(self, stmt: Any) -> int:
        """One write statement; the number of rows it touched."""
        return await self.write(lambda c: int(c.execute(stmt).rowcount))

    def insert_ignore(self, table: sa.Table) -> Any:
        """``INSERT … ON CONFLICT DO NOTHING`` in this database's dialect: a repeat is a no-op
        whose ``rowcount`` is 0, which is how callers tell "already there"."""
        if self.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

    # lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._async is not None:
            async with self._async.begin() as conn:
                await conn.run_sync(migrate.upgrade_connection)
        else:
            await self.write(migrate.upgrade_connection)

    async def close(self) -> None:
        if self._async is not None:
            await self._async.dispose()
            return
        for engine in (self._writer, self._reader):
            if engine is not None:
                engine.dispose()
        self._write_thread.shutdown(wait=True)
        self._read_threads.shutdown(wait=True)
        if self._driver is not None:
            self._driver.close()

    async def ping(self) -> None:
        await self.read(lambda c: c.execute(sa.text("SELECT 1")).scalar())
