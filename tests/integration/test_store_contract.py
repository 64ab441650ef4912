"""The Store contract (store/base.py), run against every backend."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

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
                for res in await store.append_batch(batch):
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
        deleted = await s.delete_message(r1.message.id)
        assert deleted is not None
        assert (deleted.deleted, deleted.text, deleted.seq) == (True, "", 1)
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
