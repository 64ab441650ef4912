"""The ``Search`` role's contract (``store/roles.py``), on every backend."""

from __future__ import annotations

import pytest

from hubbub.errors import BadRequest
from hubbub.store.sql import SqlStore
from tests.contract.store_fixtures import (  # noqa: F401
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
