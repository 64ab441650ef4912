"""The Store contract (store/base.py), run against every backend."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hubbub.changes import Change, Entry, LoggedMessage
from hubbub.models import NewMessage
from hubbub.store.base import AppendOutcome, AppendRequest
from hubbub.store.sql import SqlStore
from tests.support import create_pg_database, drop_pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every contract test runs against every backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'contract.db'}"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


async def open_store(url: str) -> SqlStore:
    store = SqlStore(url)
    await store.start()
    return store


def req(room: str, user: str, text: str, cmid: str | None = None) -> AppendRequest:
    return AppendRequest(
        NewMessage(room_id=room, user_id=user, username=user, text=text, client_msg_id=cmid),
        create_room=True,
        join_public=True,
    )


async def test_seq_is_gap_free_under_concurrent_writers(store_url: str) -> None:
    """Two store instances (as two processes would) append to one room at once."""
    a, b = await open_store(store_url), await open_store(store_url)
    try:
        await a.ensure_user("u")
        await a.enter_room("room", "u")

        async def writer(store: SqlStore, tag: str) -> list[int]:
            seqs = []
            for i in range(40):
                batch = [req("room", "u", f"{tag}{i}-{j}") for j in range(3)]
                for res in await store.messages.append_batch(batch):
                    assert res.outcome is AppendOutcome.CREATED
                    assert res.message is not None
                    seqs.append(res.message.seq)
            return seqs

        got = await asyncio.gather(writer(a, "a"), writer(b, "b"))
        everything = sorted(got[0] + got[1])
        assert everything == list(range(1, 241))
        history = await a.history("room", after=0, limit=1000)
        assert [m.seq for m in history] == list(range(1, 241))
        room = await a.room("room")
        assert room is not None
        assert room.last_seq == 240
    finally:
        await a.close()
        await b.close()


async def test_idempotency_within_and_across_batches(store_url: str) -> None:
    s = await open_store(store_url)
    try:
        await s.ensure_user("u")
        first = await s.append_batch(
            [
                req("r", "u", "hello", "k1"),
                req("r", "u", "hello", "k1"),
                req("r", "u", "other", "k1"),
            ]
        )
        assert [r.outcome for r in first] == [
            AppendOutcome.CREATED,
            AppendOutcome.DUPLICATE,
            AppendOutcome.CONFLICT,
        ]
        again = await s.append_batch([req("r", "u", "hello", "k1")])
        assert again[0].outcome is AppendOutcome.DUPLICATE
        assert again[0].message == first[0].message
        assert [m.text for m in await s.history("r")] == ["hello"]
    finally:
        await s.close()


async def test_rules_for_rooms_and_membership(store_url: str) -> None:
    s = await open_store(store_url)
    try:
        await s.ensure_user("owner")
        await s.ensure_user("stranger")
        await s.create_room("Secret", "private", "owner", room_id="secret")
        await s.create_room("Open", "public", "owner", room_id="open")
        strict = [
            AppendRequest(
                NewMessage(room_id=room, user_id="stranger", username="stranger", text="x")
            )
            for room in ("secret", "open", "missing")
        ]
        outcomes = [r.outcome for r in await s.append_batch(strict)]
        assert outcomes == [AppendOutcome.HIDDEN, AppendOutcome.NOT_MEMBER, AppendOutcome.NO_ROOM]
        assert await s.history("secret") == []
        assert await s.history("open") == []
    finally:
        await s.close()


async def test_delete_keeps_seq_and_empties_text(store_url: str) -> None:
    s = await open_store(store_url)
    try:
        await s.ensure_user("u")
        [r1, _] = await s.append_batch([req("d", "u", "one"), req("d", "u", "two")])
        assert r1.message is not None
        done = await s.delete_message(r1.message.id)
        assert done is not None
        deleted, logged = done
        assert (deleted.deleted, deleted.text, deleted.seq) == (True, "", 1)
        assert [c.name for c in logged] == ["message_deleted"]
        [r3] = await s.append_batch([req("d", "u", "three")])
        assert r3.message is not None
        assert r3.message.seq == 3
        assert [(m.seq, m.text) for m in await s.history("d")] == [
            (1, ""),
            (2, "two"),
            (3, "three"),
        ]
    finally:
        await s.close()


async def test_committed_messages_survive_reopen(store_url: str) -> None:
    s = await open_store(store_url)
    await s.ensure_user("u")
    await s.append_batch([req("p", "u", f"m{i}") for i in range(10)])
    await s.close()
    s = await open_store(store_url)
    try:
        assert [m.seq for m in await s.history("p", after=0)] == list(range(1, 11))
    finally:
        await s.close()


# the change log -------------------------------------------------------------------------------


def _revs(entries: list[Entry]) -> list[int]:
    return [e.rev or 0 for e in entries]


async def test_every_change_is_one_log_row_in_one_room_order(store_url: str) -> None:
    """Messages and changes share the room's rev, gap-free; each change costs one row."""
    s = await open_store(store_url)
    try:
        await s.ensure_user("u")
        await s.ensure_user("v")
        [r1, r2] = await s.append_batch([req("c", "u", "one"), req("c", "u", "two")])
        assert r1.message is not None and r2.message is not None
        # "c" was created by u's first send: u's joining is logged before the message.
        assert [c.name for c in r1.changes] == ["member_joined", "room_added"]
        assert (r1.rev, r2.rev) == (2, 3)
        rows_before = await _count_changes(s)
        edited = await s.edit_message(r1.message.id, "one!")
        assert edited is not None and [c.rev for c in edited[1]] == [4]
        assert [c.rev for c in await s.react(r2.message.id, "u", "👍", True)] == [5]
        assert await s.react(r2.message.id, "u", "👍", True) == []  # nothing changed
        joined = await s.add_member("c", "v")
        assert [(c.name, c.rev) for c in joined] == [("member_joined", 6), ("room_added", None)]
        assert await s.add_member("c", "v") == []
        left = await s.remove_member("c", "v")
        assert [(c.name, c.rev) for c in left] == [("member_left", 7), ("room_removed", None)]
        assert await _count_changes(s) - rows_before == 6  # 4 room changes + 2 personal
        log = await s.room_log("c", 0, 100)
        assert _revs(log) == list(range(1, 8))
        assert isinstance(log[1], LoggedMessage) and log[1].message.text == "one!"  # current
        assert _revs(await s.room_log("c", 3, 2)) == [4, 5]
        assert _revs(await s.room_log("c", 3, 100, before=6)) == [4, 5]
        assert await s.heads(["c"]) == {"c": 7}
        assert await s.rev_at("c", 2) == 3
        assert await s.rev_at("c", 0) == 0
        # The user's log: by position, their rooms and their personal changes.
        mine = await s.user_log("v", 0, 100)
        assert [e.name for e in mine if isinstance(e, Change)] == [
            "room_added",
            "room_removed",
        ]  # v left "c": its room changes are not v's any more
        positions = [e.position for e in await s.user_log("u", 0, 100)]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
    finally:
        await s.close()


async def _count_changes(s: SqlStore) -> int:
    return int(await s._read(lambda c: c.execute(sa.text("SELECT count(*) FROM changes")).scalar()))


async def test_revs_are_gap_free_under_concurrent_writers_and_changes(store_url: str) -> None:
    a, b = await open_store(store_url), await open_store(store_url)
    try:
        await a.ensure_user("u")
        [first] = await a.append_batch([req("g", "u", "first")])
        assert first.message is not None
        target = first.message.id

        async def sender(store: SqlStore) -> None:
            for i in range(20):
                await store.messages.append_batch([req("g", "u", f"m{i}"), req("g", "u", f"n{i}")])

        async def editor(store: SqlStore) -> None:
            for i in range(20):
                await store.messages.edit_message(target, f"edit {i}")

        await asyncio.gather(sender(a), editor(b), sender(b), editor(a))
        log = await a.room_log("g", 0, 1000)
        assert _revs(log) == list(range(1, len(log) + 1))
        assert (await a.heads(["g"]))["g"] == len(log)
    finally:
        await a.close()
        await b.close()


async def test_one_poisoned_item_fails_alone(store_url: str) -> None:
    """A trigger refuses one text: that item is REJECTED, the rest of the batch is stored."""
    s = await open_store(store_url)
    try:
        await s.ensure_user("u")
        await _poison(s, "poison")
        results = await s.append_batch(
            [req("p2", "u", "a"), req("p2", "u", "poison"), req("p2", "u", "b")]
        )
        assert [r.outcome for r in results] == [
            AppendOutcome.CREATED,
            AppendOutcome.REJECTED,
            AppendOutcome.CREATED,
        ]
        assert [(m.seq, m.text) for m in await s.history("p2")] == [(1, "a"), (2, "b")]
    finally:
        await s.close()


async def _poison(s: SqlStore, text: str) -> None:
    if s.dialect == "sqlite":
        statements = [
            f"CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.text = '{text}' "
            "BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
        ]
    else:
        statements = [
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.text = '{text}' THEN RAISE EXCEPTION 'poisoned' USING ERRCODE = '23514'; "
            "END IF; RETURN NEW; END $$",
            "CREATE TRIGGER poison BEFORE INSERT ON messages "
            "FOR EACH ROW EXECUTE FUNCTION poison()",
        ]

    def work(conn: Any) -> None:
        for statement in statements:
            conn.execute(sa.text(statement))

    await s._write(work)


async def test_first_use_of_many_rooms_in_one_batch(store_url: str) -> None:
    """Trust mode's first use, batched: the first user of a new room creates it (admin), the
    rest join; each join is logged once; a private room is not joined."""
    s = await open_store(store_url)
    try:
        await s.ensure_user("own")
        await s.create_room("secret", "private", "own", "priv")
        out = await s.enter_rooms(
            [
                ("fresh", "a", "a"),
                ("fresh", "b", "b"),
                ("fresh", "a", "a"),  # twice in one batch: one join
                ("priv", "c", "c"),
            ]
        )
        assert [len(changes) for _, changes in out] == [2, 2, 0, 0]
        assert out[0][0].created_by == "a"
        assert {m.user_id: m.role for m in await s.members("fresh")} == {
            "a": "admin",
            "b": "member",
        }
        assert await s.membership("priv", "c") is None
        assert _revs(await s.room_log("fresh", 0, 10)) == [1, 2]
        again = await s.enter_rooms([("fresh", "b", "b")])
        assert again[0][1] == []
    finally:
        await s.close()


class _WriteBetweenStatements:
    """Runs a write (by another store: another node) and commits it right before ``store``'s
    next query on the ``changes`` table: between the two index scans of one log page read."""

    def __init__(self, store: SqlStore, write: Any) -> None:
        self.store = store
        self.write = write
        self.done = False
        self.loop = asyncio.get_running_loop()
        engine = store._async.sync_engine if store._async is not None else store._reader
        assert engine is not None
        self.engine = engine

    def _hook(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.done or "FROM changes" not in statement:
            return
        self.done = True
        if self.store.dialect == "sqlite":  # a reader thread: the loop is free meanwhile
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
        await a.ensure_user("u")
        await a.enter_room("room", "u")
        [first] = await a.append_batch([req("room", "u", "first")])
        assert first.message is not None
        first_id = first.message.id
        page = await a.room_log("room", 0, 100)
        after_rev = page[-1].rev or 0
        after_position = page[-1].position

        async def elsewhere() -> None:
            # another node: a message, then a change after it (a later rev and position)
            await b.append_batch([req("room", "u", "second")])
            await b.react(first_id, "u", "👍", True)

        with _WriteBetweenStatements(a, elsewhere) as between:
            page = await a.room_log("room", after_rev, 100)
        assert between.done
        # Either the moment before the write (nothing) or after it (both): never a hole.
        assert _revs(page) in ([], [after_rev + 1, after_rev + 2]), _revs(page)

        async def more() -> None:
            await b.append_batch([req("room", "u", "third")])
            await b.react(first_id, "u", "🎉", True)

        after_position = max(e.position for e in await a.user_log("u", after_position, 100))
        with _WriteBetweenStatements(a, more) as between:
            page = await a.user_log("u", after_position, 100)
        assert between.done
        positions = [e.position for e in page]
        assert positions in ([], [after_position + 1, after_position + 2]), positions
    finally:
        await a.close()
        await b.close()
