"""The ``Search`` role's contract (``store/roles.py``), on every backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hubbub.errors import BadRequest
from hubbub.store.sql import SqlStore
from tests.contract.store_fixtures import (  # noqa: F401
    open_store,
    req,
    sql,
    store_fixture,
    store_url_fixture,
)


async def texts(s: SqlStore, user: str, terms: list[str], room_id: str | None = None) -> set[str]:
    hits, _ = await s.search.find(user, terms, room_id=room_id)
    return {m.text for m, _ in hits}


async def test_search_sees_only_what_the_user_may_read(store: SqlStore) -> None:
    s = store
    for u in ("a", "b"):
        await s.accounts.ensure_user(u)
    await s.rooms.create_room("Open", "public", "a", room_id="open")
    await s.rooms.create_room("A's", "private", "a", room_id="apriv")
    await s.rooms.create_room("B's", "private", "b", room_id="bpriv")
    await s.messages.append_batch(
        [
            req("open", "a", "kiwi in the open"),
            req("apriv", "a", "kiwi for a alone"),
            req("bpriv", "b", "kiwi for b alone"),
        ]
    )
    [gone] = await s.messages.append_batch([req("open", "a", "kiwi deleted later")])
    assert gone.message is not None
    await s.messages.delete_message(gone.message.id)
    [hidden] = await s.messages.append_batch([req("open", "a", "kiwi flagged deleted")])
    assert hidden.message is not None  # deleted, its text still there: the flag alone hides it
    await sql(s, "UPDATE messages SET deleted = :d WHERE id = :id", d=True, id=hidden.message.id)
    assert await texts(s, "a", ["kiwi"]) == {"kiwi in the open", "kiwi for a alone"}
    assert await texts(s, "b", ["kiwi"]) == {"kiwi in the open", "kiwi for b alone"}
    assert await texts(s, "stranger", ["kiwi"]) == {"kiwi in the open"}
    assert await texts(s, "a", ["kiwi"], room_id="apriv") == {"kiwi for a alone"}
    assert await texts(s, "a", ["kiwi"], room_id="bpriv") == set()
    assert await texts(s, "a", ["mango"]) == set()


async def test_search_highlights_and_prefix(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("u")
    await s.messages.append_batch([req("hl", "u", "Grape juice and grapefruit")])
    hits, cursor = await s.search.find("u", ["grape", "jui"])  # the last word is a prefix
    assert cursor is None
    [(msg, spans)] = hits
    assert msg.text == "Grape juice and grapefruit"
    assert ((0, 5) in spans and (6, 9) in spans) or (6, 11) in spans
    assert all(msg.text[a:b] for a, b in spans)


async def test_search_pages_with_a_cursor(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("u")
    await s.messages.append_batch([req("pg", "u", f"lemon number {i}") for i in range(5)])
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        hits, cursor = await s.search.find("u", ["lemon"], limit=2, cursor=cursor)
        seen += [m.id for m, _ in hits]
        pages += 1
        if cursor is None:
            break
        # a message arriving while paging does not shift the pages (a snapshot of the first)
        await s.messages.append_batch([req("pg", "u", f"lemon late {pages}")])
    assert pages == 3
    assert len(seen) == 5 == len(set(seen))


@pytest.mark.parametrize("cursor", ["", "not-a-cursor", "MTAwMDAwMDB8eA", "x" * 200])
async def test_a_cursor_the_store_did_not_hand_out_is_refused(store: SqlStore, cursor: str) -> None:
    await store.accounts.ensure_user("u")
    with pytest.raises(BadRequest):
        await store.search.find("u", ["lemon"], cursor=cursor)


async def test_edits_and_deletes_are_searched_right_before_and_after_indexing(
    store: SqlStore,
) -> None:
    """SQLite indexes behind the send path (migration 0009): an edit or delete that comes before
    the message is indexed, and one that comes after, must both leave the index exact (no old
    text found, no deleted message found, no index corruption)."""
    s = store
    await s.accounts.ensure_user("u")
    stored = await s.messages.append_batch(
        [req("ix", "u", f"{w} before indexing") for w in ("papaya", "quince", "lychee")]
    )
    papaya, quince, lychee = (r.message for r in stored)
    assert papaya is not None and quince is not None and lychee is not None
    assert await s.messages.edit_message(papaya.id, "persimmon edited early") is not None
    assert await s.messages.delete_message(quince.id) is not None
    assert await texts(s, "u", ["papaya"]) == set()
    assert await texts(s, "u", ["persimmon"]) == {"persimmon edited early"}
    assert await texts(s, "u", ["quince"]) == set()
    assert await texts(s, "u", ["lychee"]) == {"lychee before indexing"}
    # now indexed: the same again, through the triggers
    assert await s.messages.edit_message(lychee.id, "longan edited late") is not None
    assert await s.messages.delete_message(papaya.id) is not None
    assert await texts(s, "u", ["lychee"]) == set()
    assert await texts(s, "u", ["longan"]) == {"longan edited late"}
    assert await texts(s, "u", ["persimmon"]) == set()
    assert await texts(s, "u", ["edited"]) == {"longan edited late"}


async def test_sqlite_indexes_behind_the_send_path(tmp_path: Path) -> None:
    """On SQLite a send's transaction leaves the full-text index alone; the catch-up indexes
    the message within about a second without any search asking for it. (PostgreSQL's index
    is maintained in the send's own transaction.)"""
    s = await open_store(f"sqlite:///{tmp_path / 'behind.db'}")
    try:
        await _indexed_behind(s)
    finally:
        await s.close()


async def _indexed_behind(s: SqlStore) -> None:
    await s.accounts.ensure_user("u")
    before = await sql(s, "SELECT upto FROM messages_fts_progress")
    [r] = await s.messages.append_batch([req("bg", "u", "tamarind stored")])
    assert r.message is not None
    gseq = await sql(s, "SELECT gseq FROM messages WHERE id = :id", id=r.message.id)
    assert await sql(s, "SELECT upto FROM messages_fts_progress") == before < gseq
    for _ in range(60):
        if await sql(s, "SELECT upto FROM messages_fts_progress") == gseq:
            break
        await asyncio.sleep(0.05)
    assert await sql(s, "SELECT upto FROM messages_fts_progress") == gseq
    assert (
        await sql(s, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'tamarind'") == 1
    )


async def test_upgrade_to_deferred_indexing_keeps_old_messages_found(tmp_path: Path) -> None:
    """A database written before migration 0009 (trigger-indexed) upgrades with every old
    message still found exactly once, and new ones found too."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from hubbub.store.migrate import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0008")
        conn.execute(
            sa.text(
                "INSERT INTO rooms (id, name, visibility, created_by, created_at, last_seq, "
                "last_rev) VALUES ('old', 'old', 'public', 'u', '2026-01-01T00:00:00.000Z', 2, 2)"
            )
        )
        for seq, text in ((1, "mulberry from before"), (2, "gooseberry from before")):
            conn.execute(
                sa.text(
                    "INSERT INTO messages (id, room_id, seq, user_id, username, type, text, "
                    "created_at, deleted, gseq, rev) VALUES (:id, 'old', :seq, 'u', 'u', "
                    "'text', :text, '2026-01-01T00:00:00.000Z', 0, :seq, :seq)"
                ),
                {"id": f"m{seq}", "seq": seq, "text": text},
            )
        conn.execute(sa.text("UPDATE counters SET value = 2 WHERE name = 'messages'"))
    engine.dispose()
    s = await open_store(url)
    try:
        await s.accounts.ensure_user("u")
        assert await sql(s, "SELECT upto FROM messages_fts_progress") == 2
        await s.messages.append_batch([req("old", "u", "mulberry from after")])
        assert await texts(s, "u", ["mulberry"]) == {"mulberry from before", "mulberry from after"}
        assert await s.messages.edit_message("m2", "cloudberry edited") is not None
        assert await texts(s, "u", ["gooseberry"]) == set()
        assert await texts(s, "u", ["cloudberry"]) == {"cloudberry edited"}
    finally:
        await s.close()
