"""The chat rules on their own: the writer and the rule objects built by hand over a real
SqlStore (a temp SQLite file) and a MemoryBroker, with no HTTP and no mocks.

A store subclass counts ``append_batch`` calls, so group commit is seen as it is: many
concurrent sends, one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest

from hubbub.auth.accounts import Accounts
from hubbub.auth.identity import Authenticator, Identity
from hubbub.auth.tokens import TokenSigner
from hubbub.broker.memory import MemoryBroker
from hubbub.chat.activity import Activity
from hubbub.chat.files import FileRules
from hubbub.chat.messages import MessageRules
from hubbub.chat.publish import Publisher
from hubbub.chat.rooms import RoomRules
from hubbub.chat.writer import CommitPacer, Writer
from hubbub.encoding import Event
from hubbub.errors import Conflict, Forbidden, HubbubError, Unauthenticated
from hubbub.hub import CONTROL
from hubbub.presence.memory import MemoryPresence
from hubbub.ratelimit.memory import MemoryFailureLimiter
from hubbub.store.base import AppendRequest, AppendResult
from hubbub.store.sql import SqlStore
from hubbub.typing.memory import MemoryTypingTracker

PASSWORD = "Vq8#hT2!mZp4rL"
NEW_PASSWORD = "9wK$eR3u@Lx7nB"


class CountingStore(SqlStore):
    """The real store, remembering the size of every batch the writer commits."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.batches: list[int] = []
        commit = self.messages.append_batch

        async def counted(requests: Sequence[AppendRequest]) -> list[AppendResult]:
            self.batches.append(len(requests))
            return await commit(requests)

        self.messages.append_batch = counted  # type: ignore[method-assign]


@dataclass
class Chat:
    store: CountingStore
    broker: MemoryBroker
    publisher: Publisher
    rooms: RoomRules
    activity: Activity
    writer: Writer
    messages: MessageRules
    accounts: Accounts
    auth: Authenticator
    signer: TokenSigner
    events: list[Event] = field(default_factory=list)

    def named(self, name: str) -> list[dict[str, object]]:
        return [msgspec.json.decode(e.data) for e in self.events if e.name == name]

    async def user(self, name: str) -> Identity:
        user = await self.store.accounts.create_user(name, None)
        return Identity(user.id, user.username)


async def build(
    tmp_path: Path, *, batch_max: int = 256, commit_interval: float = 0.0, pace_window: float = 5.0
) -> Chat:
    store = CountingStore(f"sqlite:///{tmp_path / 'chat.db'}")
    await store.start()
    broker = MemoryBroker()
    presence = MemoryPresence()
    publisher = Publisher(broker, presence)
    rooms = RoomRules(store, publisher, presence, trust=False)
    activity = Activity(store, publisher, rooms, presence=presence, typing=MemoryTypingTracker())
    writer = Writer(
        store,
        publisher,
        activity.typing,
        trust=False,
        write_batch_max=batch_max,
        commit_interval=commit_interval,
        pace_window=pace_window,
    )
    files = FileRules(store, rooms, writer, None)
    messages = MessageRules(store, publisher, rooms, files)
    signer = TokenSigner("x" * 64)
    auth = Authenticator("jwt", store, signer, session_ttl=3600)
    accounts = Accounts(
        store,
        auth,
        signer,
        publisher,
        MemoryFailureLimiter(100, 100, 60),
        session_ttl=3600,
        access_token_ttl=600,
        refresh_token_ttl=3600,
        ticket_ttl=30,
    )
    chat = Chat(store, broker, publisher, rooms, activity, writer, messages, accounts, auth, signer)
    await broker.start(chat.events.append)
    await broker.subscribe(CONTROL)
    await activity.start()
    await writer.start()
    return chat


@pytest.fixture
async def chat(tmp_path: Path) -> AsyncIterator[Chat]:
    c = await build(tmp_path)
    yield c
    await c.activity.close()
    await c.writer.close()
    await c.store.close()


async def lobby(chat: Chat, owner: Identity) -> str:
    room = await chat.rooms.create_room(owner, "Lobby", "public", "lobby")
    await chat.broker.subscribe(room.id)
    return room.id


async def test_concurrent_sends_are_one_commit(chat: Chat) -> None:
    alice = await chat.user("alice")
    room_id = await lobby(chat, alice)
    sent = await asyncio.gather(*(chat.writer.send(alice, room_id, f"m{i}") for i in range(20)))
    assert chat.store.batches == [20]
    assert [s.message.seq for s in sent] == list(range(1, 21))
    assert all(s.created for s in sent)
    assert [m["text"] for m in chat.named("message")] == [f"m{i}" for i in range(20)]


async def test_a_batch_never_exceeds_write_batch_max(tmp_path: Path) -> None:
    chat = await build(tmp_path, batch_max=8)
    try:
        alice = await chat.user("alice")
        room_id = await lobby(chat, alice)
        await asyncio.gather(*(chat.writer.send(alice, room_id, f"m{i}") for i in range(20)))
        assert chat.store.batches == [8, 8, 4]
    finally:
        await chat.activity.close()
        await chat.writer.close()
        await chat.store.close()


async def close(chat: Chat) -> None:
    await chat.activity.close()
    await chat.writer.close()
    await chat.store.close()


@pytest.mark.parametrize("interval", [0.0, 0.6])
async def test_sends_of_several_people_share_a_paced_commit(
    tmp_path: Path, interval: float
) -> None:
    """With a commit interval, a send that follows someone else's commit closely waits for the
    rest of the interval, and what arrives meanwhile shares its commit; without, each commits
    on arrival."""
    chat = await build(tmp_path, commit_interval=interval)
    try:
        alice, bob, carol = [await chat.user(n) for n in ("alice", "bob", "carol")]
        room_id = await lobby(chat, alice)
        for who in (bob, carol):
            await chat.rooms.join(who, room_id)
        await chat.writer.send(alice, room_id, "first")
        from_bob = asyncio.create_task(chat.writer.send(bob, room_id, "second"))
        await asyncio.sleep(0.15)
        from_carol = asyncio.create_task(chat.writer.send(carol, room_id, "third"))
        sent = [await from_bob, await from_carol]
        assert [s.message.seq for s in sent] == [2, 3]
        assert chat.store.batches == ([1, 2] if interval else [1, 1, 1])
        assert [m["text"] for m in chat.named("message")] == ["first", "second", "third"]
    finally:
        await close(chat)


async def test_a_paced_commit_goes_as_soon_as_everyone_sending_is_in(tmp_path: Path) -> None:
    """Two people sending: the second one's send waits for the other's next send, not for the
    whole interval (a closed loop of senders is committed the moment they are all in)."""
    chat = await build(tmp_path, commit_interval=3.0)
    try:
        alice, bob = [await chat.user(n) for n in ("alice", "bob")]
        room_id = await lobby(chat, alice)
        await chat.rooms.join(bob, room_id)
        await chat.writer.send(alice, room_id, "one")
        started = asyncio.get_running_loop().time()
        from_bob = asyncio.create_task(chat.writer.send(bob, room_id, "two"))
        await asyncio.sleep(0.1)
        await chat.writer.send(alice, room_id, "three")
        await from_bob
        assert asyncio.get_running_loop().time() - started < 2.0
        assert chat.store.batches == [1, 2]
        assert [m["text"] for m in chat.named("message")] == ["one", "two", "three"]
    finally:
        await close(chat)


def test_the_pacer_waits_for_what_the_rate_and_the_senders_allow() -> None:
    pacer = CommitPacer(0.005, window=0.25)
    pacer.arrived("alice", 0.0)
    assert pacer.expected(0.001) == 0  # alone
    # 16 people, 1,000 sends/s: five sends arrive in an interval
    t = 1.0
    for k in range(2000):
        t = 1.0 + k / 1000
        pacer.arrived(f"u{k % 16}", t)
        if k % 5 == 4:
            pacer.committing(t)
    assert pacer.expected(t) == 5
    # the same rate from two people: no more than two sends to wait for
    pair = CommitPacer(0.005, window=0.25)
    for k in range(2000):
        t = 1.0 + k / 1000
        pair.arrived(f"u{k % 2}", t)
        if k % 5 == 4:
            pair.committing(t)
    assert pair.expected(t) == 2
    # people who stopped sending a window ago no longer count
    assert pair.expected(t + 1.0) == 0


async def test_a_lone_sender_is_never_paced(tmp_path: Path) -> None:
    """One person sending one message after another (a script, ``hubbub send`` reading lines)
    does not wait for a commit interval: nobody else could share the commit."""
    chat = await build(tmp_path, commit_interval=5.0)
    try:
        alice = await chat.user("alice")
        room_id = await lobby(chat, alice)
        started = asyncio.get_running_loop().time()
        for i in range(5):
            await chat.writer.send(alice, room_id, f"m{i}")
        assert asyncio.get_running_loop().time() - started < 4.0
        assert chat.store.batches == [1, 1, 1, 1, 1]
    finally:
        await close(chat)


async def test_a_repeated_client_msg_id_answers_the_stored_message(chat: Chat) -> None:
    alice = await chat.user("alice")
    room_id = await lobby(chat, alice)
    first = await chat.writer.send(alice, room_id, "hello", client_msg_id="c1")
    again = await chat.writer.send(alice, room_id, "hello", client_msg_id="c1")
    assert first.created and not again.created
    assert again.message.id == first.message.id and again.message.seq == first.message.seq
    assert len(chat.named("message")) == 1  # the retry is answered, not streamed again
    with pytest.raises(Conflict) as err:
        await chat.writer.send(alice, room_id, "something else", client_msg_id="c1")
    assert err.value.code == "idempotency_conflict"


async def test_only_the_author_edits_a_message(chat: Chat) -> None:
    alice, bob = await chat.user("alice"), await chat.user("bob")
    room_id = await lobby(chat, alice)
    await chat.rooms.join(bob, room_id)
    sent = await chat.writer.send(alice, room_id, "mine")
    with pytest.raises(Forbidden) as err:
        await chat.messages.edit(bob, sent.message.id, "yours now")
    assert err.value.code == "not_message_owner"
    assert chat.named("message_edited") == []
    edited = await chat.messages.edit(alice, sent.message.id, "still mine")
    assert edited.text == "still mine"
    assert len(chat.named("message_edited")) == 1


async def test_leaving_a_room_publishes_member_left(chat: Chat) -> None:
    alice, bob = await chat.user("alice"), await chat.user("bob")
    room_id = await lobby(chat, alice)
    _, role, joined = await chat.rooms.join(bob, room_id)
    assert joined and role == "member"
    assert await chat.rooms.leave(bob, room_id) is True
    left = [e for e in chat.events if e.name == "member_left" and e.room_id == room_id]
    assert len(left) == 1 and b"bob" in left[0].data
    assert await chat.rooms.leave(bob, room_id) is False  # twice is not an error, nor news
    assert len([e for e in chat.events if e.name == "member_left"]) == 1


async def test_a_reused_refresh_token_ends_its_session(chat: Chat) -> None:
    await chat.accounts.register("carol", PASSWORD, "10.0.0.1")
    issued = await chat.accounts.login("carol", PASSWORD, "10.0.0.1")
    rotated = await chat.accounts.refresh(issued.refresh_token)
    assert rotated.refresh_token != issued.refresh_token
    claims = chat.signer.verify(rotated.access_token, "access")
    session_id = str(claims["sid"])
    with pytest.raises(Unauthenticated) as err:
        await chat.accounts.refresh(issued.refresh_token)  # the first one, again: a copy
    assert err.value.code == "refresh_token_reused"
    record = await chat.store.accounts.session(session_id)
    assert record is not None and record.revoked
    ended = chat.named("sessions_ended")
    assert ended == [{"user_id": issued.user.id, "session_ids": [session_id]}]
    with pytest.raises(Unauthenticated) as err:
        await chat.accounts.refresh(rotated.refresh_token)  # the session is over for all
    assert err.value.code == "session_ended"


async def test_a_password_change_ends_every_other_session(chat: Chat) -> None:
    user = await chat.accounts.register("dave", PASSWORD, None)
    here = await chat.accounts.login("dave", PASSWORD, None)
    there = await chat.accounts.login("dave", PASSWORD, None)
    here_sid = str(chat.signer.verify(here.access_token, "access")["sid"])
    there_sid = str(chat.signer.verify(there.access_token, "access")["sid"])
    who = Identity(user.id, user.username, here_sid)
    with pytest.raises(Forbidden):
        await chat.accounts.change_password(who, "not the password", NEW_PASSWORD)
    assert chat.named("sessions_ended") == []
    await chat.accounts.change_password(who, PASSWORD, NEW_PASSWORD)
    assert chat.named("sessions_ended") == [{"user_id": user.id, "session_ids": [there_sid]}]
    kept, ended = await chat.auth.session(here_sid), await chat.auth.session(there_sid)
    assert kept is not None and not kept.revoked
    assert ended is not None and ended.revoked
    with pytest.raises(Unauthenticated):
        await chat.accounts.login("dave", PASSWORD, None)
    await chat.accounts.login("dave", NEW_PASSWORD, None)


async def test_two_registers_for_one_name_make_one_account(chat: Chat) -> None:
    results = await asyncio.gather(
        chat.accounts.register("erin", PASSWORD, None),
        chat.accounts.register("Erin", PASSWORD, None),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], HubbubError) and errors[0].code == "username_taken"
    assert isinstance(errors[0], Conflict)
