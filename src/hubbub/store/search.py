"""Full-text search queries (SQLite FTS5 now, PostgreSQL ``tsvector``), as plain functions of a
synchronous ``Connection`` like the rest of the store, plus the opaque page cursor.

What may be found: messages that are not deleted, in rooms that are public or that the user is
a member of — decided inside the one query, never room by room. The ranking is bm25 (FTS5's
``rank``; ``ts_rank`` on PostgreSQL), ties broken by the newer message.

User input never reaches the query parser as syntax: the words (``hubbub.fulltext``) are each
quoted (``"word"``), the last one as a prefix (``"word"*``), and ANDed; the expression is a bound
parameter.

Pages: the cursor carries an offset and a snapshot time; every page only considers messages
created up to the snapshot (the first page's time), so messages arriving while a client pages
through results do not shift them.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from hubbub.errors import BadRequest

MAX_OFFSET = 100_000
_TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_MAX_CURSOR_CHARS = 128


def fts5_match(terms: Sequence[str]) -> str:
    """``"a" AND "b" AND "c"*``: every term a quoted string (``"`` doubled), the last a prefix."""
    quoted = ['"' + t.replace('"', '""') + '"' for t in terms]
    quoted[-1] += "*"
    return " AND ".join(quoted)


def pg_tsquery(terms: Sequence[str]) -> str:
    """``'a' & 'b' & 'c':*`` for ``to_tsquery``: every term quoted (``'`` doubled, ``\\``
    escaped), the last a prefix."""
    quoted = ["'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in terms]
    quoted[-1] += ":*"
    return " & ".join(quoted)


def encode_cursor(offset: int, snapshot: str) -> str:
    raw = f"{offset}|{snapshot}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """``(offset, snapshot)``; 400 ``invalid_cursor`` for anything we did not hand out."""
    bad = BadRequest(
        "before is not a cursor from a previous search page (use its next_before)",
        code="invalid_cursor",
    )
    if not cursor or len(cursor) > _MAX_CURSOR_CHARS:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError) as exc:
        raise bad from exc
    offset_text, _, snapshot = raw.partition("|")
    if not offset_text.isdigit() or not offset_text.isascii() or not _TIME_RE.fullmatch(snapshot):
        raise bad
    offset = int(offset_text)
    if offset > MAX_OFFSET:
        raise bad
    return offset, snapshot


_COLUMNS = (
    "m.id, m.room_id, m.seq, m.user_id, m.username, m.type, m.text, m.created_at, "
    "m.client_ts, m.client_msg_id, m.edited_at, m.deleted, m.file"
)

# Rooms the user may read: public ones and their own. Fixed SQL; only bound values vary.
_SCOPE = (
    "m.room_id IN (SELECT r.id FROM rooms r WHERE r.visibility = 'public' "
    "UNION SELECT mb.room_id FROM members mb WHERE mb.user_id = :user_id)"
)

_SQLITE = (
    f"SELECT {_COLUMNS} FROM messages_fts "
    "JOIN messages m ON m.rowid = messages_fts.rowid "
    "WHERE messages_fts MATCH :match AND m.deleted = 0 AND m.created_at <= :snapshot "
    f"AND {_SCOPE} {{room}}"
    "ORDER BY messages_fts.rank, m.created_at DESC, m.seq DESC, m.room_id "
    "LIMIT :limit OFFSET :offset"
)

# ``to_tsvector('simple', hubbub_fold(text))`` exactly as the GIN index of migration 0004 has
# it; ``hubbub_fold`` removes accents (``unaccent``), so "cafe" finds "Café" as on SQLite.
_POSTGRES = (
    f"SELECT {_COLUMNS}, ts_rank(to_tsvector('simple', hubbub_fold(m.text)), query) AS score "
    "FROM messages m, to_tsquery('simple', hubbub_fold(:match)) AS query "
    "WHERE to_tsvector('simple', hubbub_fold(m.text)) @@ query AND m.deleted = false "
    f"AND m.created_at <= :snapshot AND {_SCOPE} {{room}}"
    "ORDER BY score DESC, m.created_at DESC, m.seq DESC, m.room_id "
    "LIMIT :limit OFFSET :offset"
)

_ROOM = "AND m.room_id = :room_id "

_QUERIES = {
    (dialect, bool(room)): sa.text(sql.format(room=_ROOM if room else ""))
    for dialect, sql in (("sqlite", _SQLITE), ("postgresql", _POSTGRES))
    for room in (False, True)
}


def search_rows(
    conn: Connection,
    dialect: str,
    *,
    user_id: str,
    terms: Sequence[str],
    room_id: str | None,
    limit: int,
    offset: int,
    snapshot: str,
) -> list[Any]:
    """Up to ``limit`` matching message rows, best first, after skipping ``offset``."""
    if dialect == "postgresql":
        query, match = _QUERIES[("postgresql", room_id is not None)], pg_tsquery(terms)
    else:
        query, match = _QUERIES[("sqlite", room_id is not None)], fts5_match(terms)
    params: dict[str, Any] = {
        "match": match,
        "user_id": user_id,
        "snapshot": snapshot,
        "limit": limit,
        "offset": offset,
    }
    if room_id is not None:
        params["room_id"] = room_id
    return list(conn.execute(query, params).all())
