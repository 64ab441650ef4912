"""Search in SQL: the page around the one full-text query (the query and the cursor:
``store/search.py``; rules: ``store/roles.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from hubbub.fulltext import Span, highlights
from hubbub.models import Message, utc_now
from hubbub.store import search as fts
from hubbub.store.sql.engine import Database
from hubbub.store.sql.fts_index import FtsCatchUp
from hubbub.store.sql.rows import with_reactions


class SqlSearch:
    def __init__(self, db: Database, fts: FtsCatchUp) -> None:
        self._db = db
        self._fts = fts

    async def find(
        self,
        user_id: str,
        query_terms: Sequence[str],
        *,
        room_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[tuple[Message, list[Span]]], str | None]:
        """One query over every room ``user_id`` may read (see ``store/search.py``); one row
        more than the page says whether there is a next one."""
        if cursor is None:
            offset, snapshot = 0, utc_now()
        else:
            offset, snapshot = fts.decode_cursor(cursor)
        dialect = self._db.dialect
        await self._fts.catch_up()  # what was stored before this search is found by it

        def work(conn: Connection) -> list[Message]:
            rows = fts.search_rows(
                conn,
                dialect,
                user_id=user_id,
                terms=query_terms,
                room_id=room_id,
                limit=limit + 1,
                offset=offset,
                snapshot=snapshot,
            )
            return with_reactions(conn, rows)

        found = await self._db.read(work)
        more = len(found) > limit and offset + limit <= fts.MAX_OFFSET
        page = found[:limit]
        hits = [(m, highlights(m.text, query_terms)) for m in page]
        return hits, fts.encode_cursor(offset + limit, snapshot) if more else None
