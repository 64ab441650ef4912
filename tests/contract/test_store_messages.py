"""The ``Messages`` role's contract (``store/roles.py``), on every backend."""

from __future__ import annotations

import asyncio
from typing import Any

from hubbub.models import FileRecord, utc_now
from hubbub.store.base import AppendOutcome, AppendRequest
from hubbub.store.sql import SqlStore
from tests.contract.store_fixtures import (  # noqa: F401
    open_store,
    poison,
    req,
    sql,
    store_fixture,
    store_url_fixture,
    strict,
)

OLD = "2000-01-01T00:00:00.000Z"


# append_batch ---------------------------------------------------------------------------------


async def test_seq_is_gap_free_under_concurrent_writers(store_url: str) -> None:
    """Two store instances (as two processes would) append to one room at once."""
    a, b = await open_store(store_url), await open_store(store_url)
    try:
        await a.accounts.ensure_user("u")
        await a.rooms.enter_room("room", "u")

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
        history = await a.messages.history("room", after=0, limit=1000)
        assert [m.seq for m in history] == list(range(1, 241))
        room = await a.rooms.room("room")
        assert room is not None
        assert room.last_seq == 240
    finally:
        await a.close()
        await b.close()


async def test_idempotency_within_and_across_batches(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("u")
    first = await s.messages.append_batch(
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
    again = await s.messages.append_batch([req("r", "u", "hello", "k1")])
    assert again[0].outcome is AppendOutcome.DUPLICATE
    assert again[0].message == first[0].message
    assert [m.text for m in await s.messages.history("r")] == ["hello"]


async def test_client_msg_id_is_per_user_and_a_repeat_elsewhere_conflicts(store: SqlStore) -> None:
    s = store
    for u in ("u", "v"):
        await s.accounts.ensure_user(u)
    [mine] = await s.messages.append_batch([req("r", "u", "hi", "k")])
    [theirs] = await s.messages.append_batch([req("r", "v", "hi", "k")])  # another user's k
    assert theirs.outcome is AppendOutcome.CREATED
    [moved] = await s.messages.append_batch([req("r2", "u", "hi", "k")])  # same text, other room
    assert moved.outcome is AppendOutcome.CONFLICT
    assert moved.message == mine.message
    assert await s.messages.history("r2") == []


async def test_rules_for_rooms_and_membership(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("owner")
    await s.accounts.ensure_user("stranger")
    await s.rooms.create_room("Secret", "private", "owner", room_id="secret")
    await s.rooms.create_room("Open", "public", "owner", room_id="open")
    batch = [strict(room, "stranger", "x") for room in ("secret", "open", "missing")]
    outcomes = [r.outcome for r in await s.messages.append_batch(batch)]
    assert outcomes == [AppendOutcome.HIDDEN, AppendOutcome.NOT_MEMBER, AppendOutcome.NO_ROOM]
    assert await s.messages.history("secret") == []
    assert await s.messages.history("open") == []
    assert await s.rooms.room("missing") is None
    # join_public lets the stranger into the public room (never into the private one)
    joining = [
        AppendRequest(r.message, join_public=True) for r in (strict("open", "stranger", "in"),)
    ] + [AppendRequest(strict("secret", "stranger", "no").message, join_public=True)]
    outcomes = [r.outcome for r in await s.messages.append_batch(joining)]
    assert outcomes == [AppendOutcome.CREATED, AppendOutcome.HIDDEN]
    assert await s.rooms.membership("open", "stranger") == "member"
    assert await s.rooms.membership("secret", "stranger") is None


async def test_first_send_creates_the_room_and_logs_the_join_before_the_message(
    store: SqlStore,
) -> None:
    s = store
    await s.accounts.ensure_user("u")
    [first, second] = await s.messages.append_batch([req("new", "u", "a"), req("new", "u", "b")])
    assert first.room_created and second.room_created  # the batch created it
    assert [c.name for c in first.changes] == ["member_joined", "room_added"]
    assert second.changes == ()
    assert (first.rev, second.rev) == (2, 3)
    assert second.position == first.position + 1
    assert first.changes[-1].position < first.position
    assert await s.rooms.membership("new", "u") == "admin"


async def test_delete_keeps_seq_and_empties_text(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("u")
    [r1, _] = await s.messages.append_batch([req("d", "u", "one"), req("d", "u", "two")])
    assert r1.message is not None
    await s.messages.react(r1.message.id, "u", "👍", True)
    done = await s.messages.delete_message(r1.message.id)
    assert done is not None
    deleted, logged = done
    assert (deleted.deleted, deleted.text, deleted.seq, deleted.reactions) == (True, "", 1, {})
    assert [c.name for c in logged] == ["message_deleted"]
    assert logged[0].rev == 5  # join, one, two, reaction, delete
    [r3] = await s.messages.append_batch([req("d", "u", "three")])
    assert r3.message is not None
    assert r3.message.seq == 3
    assert [(m.seq, m.text) for m in await s.messages.history("d")] == [
        (1, ""),
        (2, "two"),
        (3, "three"),
    ]
    assert await s.messages.delete_message("missing") is None


async def test_committed_messages_survive_reopen(store_url: str) -> None:
    s = await open_store(store_url)
    await s.accounts.ensure_user("u")
    await s.messages.append_batch([req("p", "u", f"m{i}") for i in range(10)])
    await s.close()
    s = await open_store(store_url)
    try:
        assert [m.seq for m in await s.messages.history("p", after=0)] == list(range(1, 11))
    finally:
        await s.close()


async def test_one_poisoned_item_fails_alone(store: SqlStore) -> None:
    """A trigger refuses one text: that item is REJECTED, the rest of the batch is stored."""
    s = store
    await s.accounts.ensure_user("u")
    await poison(s, "messages", "NEW.text = 'poison'")
    results = await s.messages.append_batch(
        [req("p2", "u", "a"), req("p2", "u", "poison"), req("p2", "u", "b")]
    )
    assert [r.outcome for r in results] == [
        AppendOutcome.CREATED,
        AppendOutcome.REJECTED,
        AppendOutcome.CREATED,
    ]
    assert [(m.seq, m.text) for m in await s.messages.history("p2")] == [(1, "a"), (2, "b")]


# reading --------------------------------------------------------------------------------------


async def test_history_pages_by_seq(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("u")
    await s.messages.append_batch([req("h", "u", f"m{i}") for i in range(1, 11)])

    async def seqs(**kw: Any) -> list[int]:
        return [m.seq for m in await s.messages.history("h", **kw)]

    assert await seqs() == list(range(1, 11))
    assert await seqs(limit=3) == [8, 9, 10]  # the newest, in seq order
    assert await seqs(before=8, limit=3) == [5, 6, 7]
    assert await seqs(after=2, limit=3) == [3, 4, 5]  # the first after
    assert await seqs(after=2, before=5) == [3, 4]
    assert await seqs(after=10) == []
    assert await s.messages.history("missing") == []


async def test_message_by_id_with_its_reactions(store: SqlStore) -> None:
    s = store
    for u in ("u", "v"):
        await s.accounts.ensure_user(u)
    [r] = await s.messages.append_batch([req("m", "u", "hi", "c1")])
    assert r.message is not None
    await s.messages.react(r.message.id, "u", "👍", True)
    await s.messages.react(r.message.id, "v", "👍", True)
    got = await s.messages.message(r.message.id)
    assert got is not None
    assert (got.text, got.seq, got.client_msg_id) == ("hi", 1, "c1")
    assert got.reactions == {"👍": ["u", "v"]}
    assert await s.messages.message("missing") is None


async def test_oldest_seq(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("u")
    await s.rooms.enter_room("o", "u")
    assert await s.messages.oldest_seq("o") is None
    assert await s.messages.oldest_seq("missing") is None
    await s.messages.append_batch([req("o", "u", f"m{i}") for i in range(3)])
    assert await s.messages.oldest_seq("o") == 1


# changes --------------------------------------------------------------------------------------


async def test_edit_is_logged_with_the_next_rev(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("u")
    [r] = await s.messages.append_batch([req("e", "u", "draft")])
    assert r.message is not None
    done = await s.messages.edit_message(r.message.id, "final")
    assert done is not None
    edited, logged = done
    assert (edited.text, edited.seq) == ("final", 1)
    assert edited.edited_at is not None
    assert [(c.name, c.rev, c.ref) for c in logged] == [("message_edited", r.rev + 1, edited.id)]
    assert logged[0].position > r.position
    assert await s.log.heads(["e"]) == {"e": r.rev + 1}
    await s.messages.delete_message(r.message.id)
    assert await s.messages.edit_message(r.message.id, "again") is None  # deleted
    assert await s.messages.edit_message("missing", "x") is None


async def test_react_add_and_remove_are_idempotent(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("u")
    [r] = await s.messages.append_batch([req("x", "u", "hi")])
    assert r.message is not None
    mid = r.message.id
    added = await s.messages.react(mid, "u", "🎉", True)
    assert [(c.name, c.rev) for c in added] == [("reaction", r.rev + 1)]
    assert b'"action":"added"' in added[0].data
    assert await s.messages.react(mid, "u", "🎉", True) == []
    removed = await s.messages.react(mid, "u", "🎉", False)
    assert [(c.name, c.rev) for c in removed] == [("reaction", r.rev + 2)]
    assert b'"action":"removed"' in removed[0].data
    assert await s.messages.react(mid, "u", "🎉", False) == []
    assert await s.messages.react("missing", "u", "🎉", True) == []
    got = await s.messages.message(mid)
    assert got is not None and got.reactions == {}


async def test_mark_read_never_moves_back(store: SqlStore) -> None:
    s = store
    for u in ("u", "v"):
        await s.accounts.ensure_user(u)
    await s.messages.append_batch([req("rd", "u", f"m{i}") for i in range(5)])
    await s.rooms.add_member("rd", "v")
    pointer, logged = await s.messages.mark_read("rd", "v", 3)
    assert pointer == 3
    assert [(c.room_id, c.name, c.rev) for c in logged] == [("@v", "read", None)]
    assert await s.messages.mark_read("rd", "v", 2) == (3, [])  # never back
    assert await s.messages.mark_read("rd", "v", 3) == (3, [])  # nor a repeat
    assert (await s.messages.mark_read("rd", "v", 5))[0] == 5
    assert await s.messages.mark_read("rd", "stranger", 4) == (0, [])
    # the sender's own messages are read already
    assert await s.messages.mark_read("rd", "u", 5) == (5, [])


async def test_purge_older_than_drops_old_messages_log_and_files(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("u")
    results = await s.messages.append_batch([req("old", "u", f"m{i}") for i in range(4)])
    ids = [r.message.id for r in results if r.message is not None]
    await s.messages.react(ids[0], "u", "👍", True)
    for fid, created in (("f-old", OLD), ("f-new", utc_now())):
        await s.files.add_file(
            FileRecord(
                id=fid,
                room_id="old",
                user_id="u",
                name="a.txt",
                size=1,
                content_type="text/plain",
                created_at=created,
            )
        )
    await sql(s, "UPDATE messages SET created_at = :t WHERE seq <= 2", t=OLD)
    await sql(s, "UPDATE changes SET created_at = :t WHERE name = 'reaction'", t=OLD)
    changes_before = await sql(s, "SELECT count(*) FROM changes")
    assert await s.messages.purge_older_than(30) == (2, ["f-old"])
    assert [m.seq for m in await s.messages.history("old")] == [3, 4]
    assert await s.messages.oldest_seq("old") == 3
    assert await sql(s, "SELECT count(*) FROM reactions") == 0
    assert await sql(s, "SELECT count(*) FROM changes") == changes_before - 1
    assert await s.files.file("f-old") is None
    assert await s.files.file("f-new") is not None
    assert await s.messages.purge_older_than(30) == (0, [])
