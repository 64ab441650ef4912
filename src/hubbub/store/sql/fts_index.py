"""SQLite's full-text index, filled behind the send path (migration 0009 says why).

Rows past ``messages_fts_progress.upto`` (by ``gseq``, which is never reused, unlike a rowid)
are indexed in transactions of up to :data:`CHUNK` rows:

* before every search, so a message is found by the first search after its 201;
* about once a second after this process stored messages, so the work stays in large, cheap
  batches off the send path and a search rarely has any to do;
* when the store closes.

Each chunk is one short transaction on the single writer thread, so sends wait at most one
chunk (a few ms), never the whole backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3

from hubbub.store.sql.engine import Database

log = logging.getLogger("hubbub.store")

CHUNK = 2000
INTERVAL = 1.0


def index_pending(conn: sqlite3.Connection, limit: int = CHUNK) -> int:
    """Index the next ``limit`` unindexed messages, oldest first; how many were indexed."""
    (upto,) = conn.execute("SELECT upto FROM messages_fts_progress").fetchone()
    rows = conn.execute(
        "SELECT rowid, text, gseq FROM messages WHERE gseq > ? ORDER BY gseq LIMIT ?",
        (upto, limit),
    ).fetchall()
    if not rows:
        return 0
    conn.executemany(
        "INSERT INTO messages_fts(rowid, text) VALUES (?, ?)", [(r[0], r[1]) for r in rows]
    )
    conn.execute("UPDATE messages_fts_progress SET upto = ?", (rows[-1][2],))
    return len(rows)


class FtsCatchUp:
    """Keeps the index up with what was stored; a no-op on PostgreSQL (its index is in-table)."""

    def __init__(self, db: Database, *, interval: float = INTERVAL) -> None:
        self._db = db
        self._interval = interval
        self._enabled = db.dialect == "sqlite"
        self._pending = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def note_stored(self) -> None:
        """Messages were stored: index them within about :data:`INTERVAL`."""
        self._pending = True

    async def catch_up(self) -> None:
        """Index everything stored so far (by any process on the file)."""
        if not self._enabled:
            return
        async with self._lock:
            while await self._db.write_driver(index_pending) == CHUNK:
                pass

    def start(self) -> None:
        if self._enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="fts-catch-up")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._enabled:
            try:
                await self.catch_up()
            except Exception as exc:  # left for the next start's first search
                log.warning("full-text catch-up at close failed: %s", exc)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not self._pending:
                continue
            self._pending = False
            try:
                await self.catch_up()
            except Exception as exc:  # the database away, say: the next round or search redoes it
                self._pending = True
                log.warning("full-text catch-up postponed: %s", exc)
