"""The FileStore contract, run against every backend: the local disk, PostgreSQL (chunks in
the database) and S3 (a real moto server in its own process).

Each check is what an operator would notice: a multi-MB file comes back byte for byte in
chunks; too large, a broken upload or a cancelled one leaves nothing (no file, no rows, no
object, no open multipart upload); unknown ids are ``None``; delete is idempotent; ids that are
not the server's own are refused; and neither an upload nor a download holds the file in
memory.
"""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from hubbub.files.base import FileStore, FileTooLarge, new_file_id
from hubbub.files.local import LocalFileStore
from hubbub.files.postgres import PostgresFileStore
from hubbub.files.s3 import MIN_PART_BYTES, S3FileStore
from hubbub.store.sql import SqlStore
from tests.s3_support import bucket_contents, moto_server, new_bucket
from tests.support import create_pg_database, drop_pg_database

MiB = 1024 * 1024
BLOCK = os.urandom(64 * 1024)


@dataclass
class Backend:
    name: str
    store: FileStore
    leftovers: Callable[[], Awaitable[list[str]]]  # whatever of any file is still stored


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(params=["local", "postgres", "s3"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    kind = request.param
    if kind == "local":
        root = tmp_path / "files"
        local = LocalFileStore(root)

        async def on_disk() -> list[str]:
            return [str(p) for p in root.rglob("*") if p.is_file()]

        await local.start()
        yield Backend(kind, local, on_disk)
        await local.close()
    elif kind == "postgres":
        url = request.getfixturevalue("pg_url")
        schema = SqlStore(url)
        await schema.start()  # the migrations create file_blobs and file_chunks
        await schema.close()
        pg = PostgresFileStore(url)
        await pg.start()
        async with pg.engine.begin() as conn:
            await conn.execute(sa.text("DELETE FROM file_chunks"))
            await conn.execute(sa.text("DELETE FROM file_blobs"))

        async def rows() -> list[str]:
            async with pg.engine.connect() as conn:
                blobs = (await conn.execute(sa.text("SELECT id FROM file_blobs"))).all()
                chunks = (await conn.execute(sa.text("SELECT file_id, n FROM file_chunks"))).all()
            return [f"blob {r[0]}" for r in blobs] + [f"chunk {r[0]}/{r[1]}" for r in chunks]

        yield Backend(kind, pg, rows)
        await pg.close()
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = new_bucket(endpoint)
        s3 = S3FileStore(bucket, "a/prefix/", endpoint_url=endpoint, part_bytes=MIN_PART_BYTES)

        async def objects() -> list[str]:
            keys, uploads = await asyncio.to_thread(bucket_contents, endpoint, bucket)
            return keys + [f"multipart upload {i}" for i in range(uploads)]

        await s3.start()
        yield Backend(kind, s3, objects)
        await s3.close()


async def generated(size: int, *, fail: BaseException | None = None) -> AsyncIterator[bytes]:
    """``size`` bytes in 64 KiB chunks, made as they are consumed (never all at once)."""
    sent = 0
    i = 0
    while sent < size:
        chunk = (i.to_bytes(4, "big") + BLOCK)[: min(len(BLOCK), size - sent)]
        sent += len(chunk)
        i += 1
        yield chunk
        await asyncio.sleep(0)
    if fail is not None:
        raise fail


def expected(size: int) -> bytes:
    return b"".join(
        (i.to_bytes(4, "big") + BLOCK)[: min(len(BLOCK), size - i * len(BLOCK))]
        for i in range(-(-size // len(BLOCK)))
    )


async def nothing_left(backend: Backend) -> None:
    """Clean-ups (an S3 abort) may run just after the failure: give them a moment."""
    for _ in range(100):
        if not await backend.leftovers():
            return
        await asyncio.sleep(0.05)
    assert await backend.leftovers() == []


async def read_all(store: FileStore, file_id: str) -> tuple[int, bytes, int]:
    stored = await store.open(file_id)
    assert stored is not None
    parts = [c async for c in stored.chunks()]
    return stored.size, b"".join(parts), max((len(c) for c in parts), default=0)


async def test_round_trip_of_a_multi_megabyte_file_in_chunks(backend: Backend) -> None:
    store = backend.store
    size = 12 * MiB + 12345  # several chunks, S3 parts, and a short last one
    fid = new_file_id()
    assert await store.save(fid, generated(size), max_bytes=20 * MiB) == size
    got_size, data, biggest = await read_all(store, fid)
    assert got_size == size
    assert data == expected(size)
    assert biggest <= MiB  # read in chunks, not as one buffer
    assert await store.delete(fid) is True
    assert await store.open(fid) is None
    await nothing_left(backend)


async def test_ranges_read_only_their_bytes(backend: Backend) -> None:
    """What a ``Range`` download reads: any ``[start, stop)``, across chunk boundaries."""
    store = backend.store
    size = 6 * MiB + 777
    fid = new_file_id()
    await store.save(fid, generated(size), max_bytes=10 * MiB)
    whole = expected(size)
    stored = await store.open(fid)
    assert stored is not None
    for start, stop in [
        (0, 1),
        (1000, 600_001),  # inside the first database chunk, then across it
        (512 * 1024 - 1, 512 * 1024 + 1),
        (5 * MiB - 3, size),  # across the S3 part boundary, to the end
        (size - 10, size + 50),  # past the end: cut at the size
        (300, 300),
    ]:
        got = b"".join([c async for c in stored.chunks(start, stop)])
        assert got == whole[start:stop], (start, stop)
    await store.delete(fid)


async def test_small_and_empty_files(backend: Backend) -> None:
    store = backend.store
    for size in (0, 1, 1000):
        fid = new_file_id()
        assert await store.save(fid, generated(size), max_bytes=MiB) == size
        assert await read_all(store, fid) == (size, expected(size), min(size, 1000))
        assert await store.delete(fid) is True
    await nothing_left(backend)


async def test_too_large_stops_and_leaves_nothing(backend: Backend) -> None:
    with pytest.raises(FileTooLarge):
        await backend.store.save(new_file_id(), generated(12 * MiB), max_bytes=11 * MiB)
    with pytest.raises(FileTooLarge):
        await backend.store.save(new_file_id(), generated(1001), max_bytes=1000)
    await nothing_left(backend)


async def test_a_broken_upload_leaves_nothing(backend: Backend) -> None:
    for size in (100, 11 * MiB):  # before and after S3 has started a multipart upload
        with pytest.raises(ConnectionError):
            await backend.store.save(
                new_file_id(), generated(size, fail=ConnectionError()), max_bytes=20 * MiB
            )
    await nothing_left(backend)


async def test_a_cancelled_upload_leaves_nothing(backend: Backend) -> None:
    started = asyncio.Event()
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        async for chunk in generated(10**10):
            sent += len(chunk)
            if sent > 7 * MiB:
                started.set()
            yield chunk

    task = asyncio.create_task(backend.store.save(new_file_id(), endless(), max_bytes=10**11))
    await asyncio.wait_for(started.wait(), 60)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await nothing_left(backend)


@pytest.mark.parametrize("size", [1000, 6 * MiB])  # S3: PutObject, then a multipart upload
async def test_a_cancel_while_the_file_is_committed_leaves_nothing(
    backend: Backend, size: int
) -> None:
    """Cancelled just as the last byte arrived: the commit (rename, COMMIT, Complete/PutObject)
    is in flight and cannot be stopped, so the store undoes it once it lands."""
    exhausted = asyncio.Event()

    async def then_done() -> AsyncIterator[bytes]:
        async for chunk in generated(size):
            yield chunk
        exhausted.set()

    task = asyncio.create_task(backend.store.save(new_file_id(), then_done(), max_bytes=10 * MiB))
    await exhausted.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await nothing_left(backend)


async def test_unknown_ids_delete_twice_and_bad_ids(backend: Backend) -> None:
    store = backend.store
    assert await store.open(new_file_id()) is None
    assert await store.delete(new_file_id()) is False
    fid = new_file_id()
    await store.save(fid, generated(10), max_bytes=100)
    assert await store.delete(fid) is True
    assert await store.delete(fid) is False
    for bad in ("../secret", "..", "/etc/passwd", "ab/../../x", "A" * 32, fid + "0", ""):
        with pytest.raises(ValueError, match="invalid file id"):
            await store.save(bad, generated(10), max_bytes=100)
        assert await store.open(bad) is None
        assert await store.delete(bad) is False
    await nothing_left(backend)


async def test_neither_upload_nor_download_holds_the_file_in_memory(backend: Backend) -> None:
    """Python's own allocations (tracemalloc, every thread) while 32 MiB go in and come back
    out: the peak stays well under the file's size (an S3 part is 5 MiB and is copied once)."""
    store = backend.store
    size = 32 * MiB
    fid = new_file_id()
    await store.save(fid, generated(MiB), max_bytes=size)  # warm up imports and pools
    await store.delete(fid)
    tracemalloc.start()
    try:
        assert await store.save(fid, generated(size), max_bytes=size) == size
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        stored = await store.open(fid)
        assert stored is not None
        total = 0
        async for chunk in stored.chunks():
            total += len(chunk)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    assert upload_peak < size // 2, f"upload peak {upload_peak / MiB:.1f} MiB for 32 MiB"
    assert download_peak < size // 4, f"download peak {download_peak / MiB:.1f} MiB for 32 MiB"
    await store.delete(fid)
