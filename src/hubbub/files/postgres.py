"""Files in the database (PostgreSQL): every node on the same database serves every upload.

The bytes go in ``file_chunks`` rows of :data:`CHUNK_BYTES` each, in the order they arrive, and
one ``file_blobs`` row (id, size) is written last, in the same transaction: a reader sees the
whole file or nothing, and a failed, refused or cancelled upload — or a node that dies halfway —
leaves nothing behind (the transaction is rolled back; PostgreSQL does it itself for a dead
connection). A commit is durable (``synchronous_commit``), like the local store's ``fsync``.

At most one chunk (plus what the client sent since) is in memory, on upload and on download: a
download reads one chunk per query, as the response is sent.

The store has its own small connection pool, so long uploads never take the connections the
chat routes need; an upload holds one connection for as long as its body takes to arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hubbub.config import normalise_database_url
from hubbub.errors import Unavailable
from hubbub.files.base import FileTooLarge, StoredFile, valid_file_id
from hubbub.store.schema import file_blobs, file_chunks
from hubbub.store.sql.engine import store_away

T = TypeVar("T")

CHUNK_BYTES = 512 * 1024
POOL_SIZE = 4
POOL_OVERFLOW = 12


async def _db(work: Awaitable[T]) -> T:
    """The database being away is a 503, as everywhere else."""
    try:
        return await work
    except Exception as exc:
        if store_away(exc):
            raise Unavailable(
                "the file store is unavailable; try again", code="store_unavailable"
            ) from exc
        raise


class PostgresFileStore:
    def __init__(self, url: str, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.url = normalise_database_url(url)
        self.chunk_bytes = chunk_bytes
        self._engine: AsyncEngine | None = None
        self._undo: set[asyncio.Task[object]] = set()

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the file store is not started")
        return self._engine

    async def start(self) -> None:
        # Nothing to clear: an interrupted upload never committed.
        if self._engine is None:
            self._engine = create_async_engine(
                self.url,
                pool_size=POOL_SIZE,
                max_overflow=POOL_OVERFLOW,
                pool_pre_ping=True,
                pool_timeout=30,
            )

    async def close(self) -> None:
        for task in list(self._undo):
            with contextlib.suppress(BaseException):
                await task
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def save(self, file_id: str, chunks: AsyncIterable[bytes], *, max_bytes: int) -> int:
        if not valid_file_id(file_id):
            raise ValueError(f"invalid file id {file_id!r}")
        conn = await _db(self.engine.connect())
        try:
            await _db(conn.begin())
            size = await self._write(conn, file_id, chunks, max_bytes)
            commit = asyncio.ensure_future(_db(conn.commit()))
            try:
                await asyncio.shield(commit)
            except asyncio.CancelledError:
                # The commit may still land: once it has, undo it.
                commit.add_done_callback(lambda f: self._undo_commit(f, file_id))
                raise
        except BaseException:
            # Closing the connection rolls the transaction back (or the pool discards a
            # connection broken mid-statement, and PostgreSQL rolls back on its own).
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close())
            raise
        await conn.close()
        return size

    async def _write(
        self, conn: AsyncConnection, file_id: str, chunks: AsyncIterable[bytes], max_bytes: int
    ) -> int:
        step = self.chunk_bytes
        insert = file_chunks.insert()
        pending = bytearray()
        size = 0
        n = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise FileTooLarge(max_bytes)
            pending += chunk
            while len(pending) >= step:
                data = bytes(pending[:step])
                del pending[:step]
                await _db(conn.execute(insert, {"file_id": file_id, "n": n, "data": data}))
                n += 1
        if pending:
            data = bytes(pending)
            pending.clear()
            await _db(conn.execute(insert, {"file_id": file_id, "n": n, "data": data}))
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        await _db(
            conn.execute(
                file_blobs.insert(),
                {"id": file_id, "size": size, "chunk_bytes": step, "created_at": now},
            )
        )
        return size

    def _undo_commit(self, commit: asyncio.Future[None], file_id: str) -> None:
        if commit.cancelled() or commit.exception() is not None:
            return
        task: asyncio.Task[object] = asyncio.ensure_future(self.delete(file_id))
        self._undo.add(task)
        task.add_done_callback(self._undo.discard)

    async def open(self, file_id: str) -> StoredFile | None:
        if not valid_file_id(file_id):
            return None
        async with self.engine.connect() as conn:
            row = (
                await _db(
                    conn.execute(
                        sa.select(file_blobs.c.size, file_blobs.c.chunk_bytes).where(
                            file_blobs.c.id == file_id
                        )
                    )
                )
            ).first()
        if row is None:
            return None
        size, step = int(row.size), int(row.chunk_bytes)
        return StoredFile(
            id=file_id, size=size, reader=lambda a, b: self._read(file_id, step, a, b)
        )

    async def _read(self, file_id: str, step: int, start: int, stop: int) -> AsyncIterator[bytes]:
        query = sa.select(file_chunks.c.data).where(
            file_chunks.c.file_id == file_id, file_chunks.c.n == sa.bindparam("n")
        )
        for n in range(start // step, -(-stop // step)):
            # One short query per chunk: a slow download never holds a connection.
            async with self.engine.connect() as conn:
                data = (await _db(conn.execute(query, {"n": n}))).scalar_one_or_none()
            if data is None:  # deleted while it was being sent: cut the response short
                raise FileNotFoundError(f"file {file_id} was deleted during the download")
            lo, hi = max(start - n * step, 0), min(stop - n * step, len(data))
            yield bytes(data) if (lo, hi) == (0, len(data)) else bytes(data[lo:hi])

    async def delete(self, file_id: str) -> bool:
        if not valid_file_id(file_id):
            return False
        async with self.engine.begin() as conn:
            found = await _db(conn.execute(file_blobs.delete().where(file_blobs.c.id == file_id)))
            await _db(conn.execute(file_chunks.delete().where(file_chunks.c.file_id == file_id)))
        return bool(found.rowcount)
