"""Files on the local disk, under ``<data_dir>/files/<id[:2]>/<id>``.

An upload is written to a temporary file in its final directory, flushed and ``fsync``-ed, then
renamed over its final name with ``os.replace`` (atomic on POSIX) and the directory ``fsync``-ed:
a reader sees the whole file or none of it, and a crash never leaves a half file under a real
id. Blocking calls run in worker threads so the event loop keeps serving streams meanwhile.

One node only: several nodes need a shared store (``postgres.py``, ``s3.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from hubbub.files.base import READ_CHUNK_BYTES, FileTooLarge, StoredFile, valid_file_id

log = logging.getLogger("hubbub.files")

T = TypeVar("T")

TEMP_PREFIX = ".upload-"
TEMP_SUFFIX = ".part"
FLUSH_BYTES = 256 * 1024
STALE_TEMP_SECONDS = 3600.0


class LocalFileStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def _path(self, file_id: str) -> Path:
        if not valid_file_id(file_id):
            raise ValueError(f"invalid file id {file_id!r}")
        path = self.root / file_id[:2] / file_id
        if path.parent.parent != self.root:  # belt and braces: the pattern already ensures it
            raise ValueError(f"invalid file id {file_id!r}")
        return path

    async def start(self) -> None:
        await self._run(self._start)

    def _start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - STALE_TEMP_SECONDS
        for leftover in self.root.glob(f"*/{TEMP_PREFIX}*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    log.info("removed an interrupted upload: %s", leftover.name)

    async def save(self, file_id: str, chunks: AsyncIterable[bytes], *, max_bytes: int) -> int:
        target = self._path(file_id)
        fh, tmp = await self._run(_create_temp, target.parent)
        size = 0
        try:
            pending: list[bytes] = []
            pending_size = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise FileTooLarge(max_bytes)
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= FLUSH_BYTES:
                    data = b"".join(pending)
                    pending.clear()
                    pending_size = 0
                    await self._run(fh.write, data)
            data = b"".join(pending)
            pending.clear()
            commit = asyncio.get_running_loop().run_in_executor(
                None, _commit, fh, data, tmp, target
            )
            try:
                await asyncio.shield(commit)
            except asyncio.CancelledError:
                # The thread cannot be stopped: once it is done, undo what it did.
                commit.add_done_callback(lambda _: _discard(target))
                raise
        except BaseException:
            # Synchronous on purpose: it must run even while the task is being cancelled.
            with contextlib.suppress(OSError):
                fh.close()
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise
        return size

    async def open(self, file_id: str) -> StoredFile | None:
        if not valid_file_id(file_id):
            return None
        path = self._path(file_id)
        try:
            st = await self._run(path.stat)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return StoredFile(
            id=file_id, size=st.st_size, reader=lambda a, b: self._read(path, a, b), path=path
        )

    async def _read(self, path: Path, start: int, stop: int) -> AsyncIterator[bytes]:
        if start >= stop:
            return
        fh = await self._run(_open_read, path)
        try:
            if start:
                await self._run(fh.seek, start)
            left = stop - start
            while left > 0 and (chunk := await self._run(fh.read, min(READ_CHUNK_BYTES, left))):
                left -= len(chunk)
                yield chunk
        finally:
            fh.close()

    async def delete(self, file_id: str) -> bool:
        if not valid_file_id(file_id):
            return False
        path = self._path(file_id)

        def remove() -> bool:
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True

        return await self._run(remove)

    async def close(self) -> None:
        return None


def _open_read(path: Path) -> BinaryIO:
    return path.open("rb")


def _create_temp(directory: Path) -> tuple[BinaryIO, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=directory)
    return os.fdopen(fd, "wb"), Path(name)


def _commit(fh: BinaryIO, data: bytes, tmp: Path, target: Path) -> None:
    """Write the tail, make the bytes durable, then give the file its name (and make that
    durable too)."""
    with fh:
        if data:
            fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o640)
    os.replace(tmp, target)
    try:
        _fsync_dir(target.parent)
    except OSError:
        _discard(target)
        raise


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
