"""The ``ChangeLog`` role's contract (``store/roles.py``), on every backend."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import sqlalchemy as sa

from hubbub.changes import Change, LoggedMessage
from hubbub.store.sql import SqlStore
from tests.contract.store_fixtures import (  # noqa: F401
    channel,
    open_store,
    req,
    revs,
    sql,
    store_fixture,
    store_url_fixture,
)


async def count_changes(s: SqlStore) -> int:
    return int(await sql(s, "SELECT count(*) FROM changes"))


async def test_every_change_is_one_log_row_in_one_room_order(store: SqlStore) -> None:
    """Messages and changes share the room's rev, gap-free; each change costs one row."""
    s = store
    await s.accounts.ensure_user("u")
    await s.accounts.ensure_user("v")
    [r1, r2] = await s.messages.append_batch([req("c", "u", "one"), req("c", "u", "two")])
    assert r1.message is not None and r2.message is not None
    # "c" was created by u's first send: u's joining is logged before the message.
    assert [c.name for c in r1.changes] == ["member_joined", "room_added"]
    assert (r1.rev, r2.rev) == (2, 3)
    rows_before = await count_changes(s)
    edited = await s.messages.edit_message(r1.message.id, "one!")
    assert edited is not None and [c.rev for c in edited[1]] == [4]
    assert [c.rev for c in await s.messages.react(r2.message.id, "u", "👍", True)] == [5]
    assert await s.messages.react(r2.message.id, "u", "👍", True) == []  # nothing changed
    joined = await s.rooms.add_member("c", "v")
    assert [(c.name, c.rev) for c in joined] == [("member_joined", 6), ("room_added", None)]
    assert await s.rooms.add_member("c", "v") == []
    left = await s.rooms.remove_member("c", "v")
    assert [(c.name, c.rev) for c in left] == [("member_left", 7), ("room_removed", None)]
    assert await count_changes(s) - rows_before == 6  # 4 room changes + 2 personal
    log = await s.log.room_log("c", 0, 100)
    assert revs(log) == list(range(1, 8))
    assert isinstance(log[1], LoggedMessage) and log[1].message.text == "one!"  # current
    assert revs(await s.log.room_log("c", 3, 2)) == [4, 5]
    assert revs(await s.log.room_log("c", 3, 100, before=6)) == [4, 5]
    assert await s.log.heads(["c"]) == {"c": 7}
    assert await s.log.rev_at("c", 2) == 3
    assert await s.log.rev_at("c", 0) == 0
    # The user's log: by position, their rooms and their personal changes.
    mine = await s.log.user_log("v", 0, 100)
    assert [e.name for e in mine if isinstance(e, Change)] == [
        "room_added",
        "room_removed",
    ]  # v left "c": its room changes are not v's any more
    positions = [e.position for e in await s.log.user_log("u", 0, 100)]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


async def test_revs_are_gap_free_under_concurrent_writers_and_changes(store_url: str) -> None:
    a, b = await open_store(store_url), await open_store(store_url)
    try:
        await a.accounts.ensure_user("u")
        [first] = await a.messages.append_batch([req("g", "u", "first")])
        assert first.message is not None
        target = first.message.id

        async def sender(store: SqlStore) -> None:
            for i in range(20):
                await store.messages.append_batch([req("g", "u", f"m{i}"), req("g", "u", f"n{i}")])

        async def editor(store: SqlStore) -> None:
            for i in range(20):
                await store.messages.edit_message(target, f"edit {i}")

        await asyncio.gather(sender(a), editor(b), sender(b), editor(a))
        log = await a.log.room_log("g", 0, 1000)
        assert revs(log) == list(range(1, len(log) + 1))
        assert (await a.log.heads(["g"]))["g"] == len(log)
    finally:
        await a.close()
        await b.close()


class _WriteBetweenStatements:
    """Runs a write (by another store: another node) and commits it right before ``store``'s
    next query on the ``changes`` table: between the two index scans of one log page read."""

    def __init__(self, store: SqlStore, write: Any) -> None:
        self.store = store
        self.write = write
        self.done = False
        self.loop = asyncio.get_running_loop()
        db = store.db
        engine = db._async.sync_engine if db._async is not None else db._reader
        assert engine is not None
        self.engine = engine

    def _hook(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.done or "FROM changes" not in statement:
            return
        self.done = True
        if self.store.db.dialect == "sqlite":  # a reader thread: the loop is free meanwhile
            asyncio.run_coroutine_threadsafe(self.write(), self.loop).result(10)
        else:  # inside the async engine's greenlet, on the loop
            sa.util.await_only(self.write())

    def __enter__(self) -> _WriteBetweenStatements:
        sa.event.listen(self.engine, "before_cursor_execute", self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._hook)


async def test_a_log_page_is_one_moment_of_the_log(store_url: str) -> None:
    """A page of a room's log (and of a user's) is read in two scans, messages and changes;
    both must see the store at one moment. Otherwise a message and a later change committed
    between the scans come back as the change alone, and every resume (long-poll's ``next``,
    a stream's hand-off) moves past the message, which that client then never gets: seen as
    long-poll ``changes=1`` skipping messages in a PostgreSQL cluster."""
    a, b = await open_store(store_url), await open_store(store_url)
    try:
        await a.accounts.ensure_user("u")
        await a.rooms.enter_room("room", "u")
        [first] = await a.messages.append_batch([req("room", "u", "first")])
        assert first.message is not None
        first_id = first.message.id
        page = await a.log.room_log("room", 0, 100)
        after_rev = page[-1].rev or 0
        after_position = page[-1].position

        async def elsewhere() -> None:
            # another node: a message, then a change after it (a later rev and position)
            await b.messages.append_batch([req("room", "u", "second")])
            await b.messages.react(first_id, "u", "👍", True)

        with _WriteBetweenStatements(a, elsewhere) as between:
            page = await a.log.room_log("room", after_rev, 100)
        assert between.done
        # Either the moment before the write (nothing) or after it (both): never a hole.
        assert revs(page) in ([], [after_rev + 1, after_rev + 2]), revs(page)

        async def more() -> None:
            await b.messages.append_batch([req("room", "u", "third")])
            await b.messages.react(first_id, "u", "🎉", True)

        after_position = max(e.position for e in await a.log.user_log("u", after_position, 100))
        with _WriteBetweenStatements(a, more) as between:
            page = await a.log.user_log("u", after_position, 100)
        assert between.done
        positions = [e.position for e in page]
        assert positions in ([], [after_position + 1, after_position + 2]), positions
    finally:
        await a.close()
        await b.close()


# heads, positions, rev_at ---------------------------------------------------------------------


async def test_heads_and_position(store: SqlStore) -> None:
    s = store
    assert await s.log.position() == 0
    assert await s.log.heads(["missing"]) == {}
    await s.accounts.ensure_user("u")
    [r] = await s.messages.append_batch([req("h1", "u", "a")])  # join (2 entries) + message
    await s.rooms.enter_room("h2", "u")
    assert await s.log.heads(["h1", "h2", "missing"]) == {"h1": 2, "h2": 1}
    assert r.position == 3
    assert await s.log.position() == 5


async def test_rev_at_finds_where_a_message_stands(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("u")
    results = await s.messages.append_batch([req("ra", "u", f"m{i}") for i in range(3)])
    assert [await s.log.rev_at("ra", seq) for seq in (1, 2, 3)] == [r.rev for r in results]
    assert await s.log.rev_at("ra", 99) == results[-1].rev  # the newest before it
    assert await s.log.rev_at("ra", 0) == 0
    assert await s.log.rev_at("missing", 5) == 0


# user_log, log_between, visible_position ------------------------------------------------------


async def test_user_log_limits_and_only_room(store: SqlStore) -> None:
    s = store
    for u in ("u", "v"):
        await s.accounts.ensure_user(u)
    await s.messages.append_batch([req("one", "u", f"a{i}") for i in range(3)])
    await s.messages.append_batch([req("two", "u", f"b{i}") for i in range(3)])
    await s.messages.append_batch([req("elsewhere", "v", "not u's")])
    everything = await s.log.user_log("u", 0, 100)
    positions = [e.position for e in everything]
    assert positions == sorted(positions) and len(everything) == 10  # 2 joins (2 each), 6
    assert {channel(e) for e in everything} == {"one", "two", "@u"}
    page = await s.log.user_log("u", positions[2], 3)
    assert [e.position for e in page] == positions[3:6]
    only = await s.log.user_log("u", 0, 100, only_room="two")
    assert {channel(e) for e in only} == {"two"} and len(only) == 4
    personal = await s.log.user_log("u", 0, 100, only_room="@u")
    assert [(channel(e), getattr(e, "name", "")) for e in personal] == [("@u", "room_added")] * 2
    assert await s.log.user_log("u", 0, 100, only_room="elsewhere") == []  # not a member


async def test_log_between_is_a_position_range_of_some_channels(store: SqlStore) -> None:
    s = store
    for u in ("u", "v"):
        await s.accounts.ensure_user(u)
    await s.messages.append_batch([req("x", "u", "x1")])  # positions 1-3
    await s.messages.append_batch([req("y", "v", "y1")])  # positions 4-6
    await s.messages.append_batch([req("x", "u", "x2")])  # position 7
    got = await s.log.log_between(1, 7, ["x", "@u"])
    assert [(e.position, channel(e)) for e in got] == [(2, "@u"), (3, "x"), (7, "x")]
    assert isinstance(got[1], LoggedMessage) and got[1].message.text == "x1"
    assert isinstance(got[0], Change) and got[0].name == "room_added"
    assert [e.position for e in await s.log.log_between(3, 6, ["x", "y"])] == [4, 6]
    assert [e.position for e in await s.log.log_between(3, 5, ["y", "@v"])] == [4, 5]
    assert await s.log.log_between(0, 7, []) == []
    assert await s.log.log_between(7, 7, ["x"]) == []
    assert await s.log.log_between(5, 3, ["x"]) == []


async def test_visible_position_counts_only_what_the_user_can_see(store: SqlStore) -> None:
    s = store
    for u in ("u", "v"):
        await s.accounts.ensure_user(u)
    assert await s.log.visible_position("u", []) == 0
    [mine] = await s.messages.append_batch([req("mine", "u", "hi")])  # positions 1-3
    await s.messages.append_batch([req("theirs", "v", "later")])  # positions 4-6
    assert await s.log.visible_position("u", ["mine"]) == mine.position
    joined = await s.rooms.add_member("theirs", "u")  # a room change and u's room_added
    assert await s.log.visible_position("u", ["mine"]) == joined[1].position  # personal
    assert await s.log.visible_position("u", ["mine", "theirs"]) == joined[1].position
    assert await s.log.visible_position("v", ["theirs"]) == joined[0].position
    await s.messages.mark_read("theirs", "u", 1)  # u's personal read change
    assert await s.log.visible_position("v", ["theirs"]) == joined[0].position


async def test_notify_logs_on_the_personal_channel_in_position_order(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("nu")
    before = await s.log.position()
    first = await s.log.notify("nu", "order.created", {"id": 1})
    second = await s.log.notify("nu", "order.shipped", [1, "two", None])
    assert (first.room_id, first.name) == ("@nu", "notification")
    assert before < first.position < second.position
    payload = msgspec.json.decode(first.data)
    assert payload["event"] == "order.created" and payload["data"] == {"id": 1}
    assert payload["created_at"].endswith("Z")
    page = await s.log.user_log("nu", before, 10, only_room="@nu")
    assert [(e.name, msgspec.json.decode(e.data)["data"]) for e in page] == [
        ("notification", {"id": 1}),
        ("notification", [1, "two", None]),
    ]
    assert await s.log.user_log("someone-else", before, 10, only_room="@someone-else") == []
