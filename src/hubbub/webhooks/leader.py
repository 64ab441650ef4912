"""One delivering node at a time. Two nodes delivering the same log would double every POST and
could interleave a room's order, so only the holder of a lock delivers; the others try to take
it every few seconds and take over within that time if the holder dies.

* PostgreSQL: a session-level advisory lock on a connection of its own. It is released by the
  server when that session ends — a killed node's lock goes with its TCP connection.
* SQLite: an exclusive ``flock`` on a file beside the database (one machine by construction;
  ``--workers N`` are several processes). The kernel releases it when the process dies."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool


class Leadership(Protocol):
    async def acquire(self) -> bool:
        """Whether this process holds the lock now (taking it if it is free); cheap to repeat,
        and it notices a lock lost with its connection."""
        ...

    async def release(self) -> None: ...


def lock_key(url: str) -> int:
    """A signed 64-bit advisory-lock key, one per webhook URL."""
    digest = hashlib.sha256(b"hubbub-webhooks:" + url.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PgLeadership:
    def __init__(self, database_url: str, webhook_url: str) -> None:
        self._engine: AsyncEngine = create_async_engine(
            database_url,
            poolclass=NullPool,
            connect_args={"timeout": 4, "command_timeout": 4},
        ).execution_options(isolation_level="AUTOCOMMIT")
        self._key = lock_key(webhook_url)
        self._conn: AsyncConnection | None = None
        self._held = False

    async def acquire(self) -> bool:
        try:
            if self._conn is None:
                self._conn = await self._engine.connect()
            if self._held:
                await self._conn.execute(sa.text("SELECT 1"))  # still our session?
                return True
            got = await self._conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}
            )
            self._held = bool(got.scalar())
            return self._held
        except Exception:
            await self._drop()
            return False

    async def _drop(self) -> None:
        self._held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def release(self) -> None:
        await self._drop()  # ending the session releases the lock
        await self._engine.dispose()


class FileLeadership:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    async def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def leadership_for(database_url: str, webhook_url: str, data_dir: Path) -> Leadership:
    parsed = make_url(database_url)
    if parsed.get_backend_name() == "postgresql":
        return PgLeadership(database_url, webhook_url)
    db_file = parsed.database
    if db_file and db_file != ":memory:":
        return FileLeadership(Path(db_file + ".webhooks.lock"))
    return FileLeadership(data_dir / "webhooks.lock")
