"""The Python SDK (``hubbub.client``) against real servers: it imports without the server's
dependencies; ``send()`` retried with one ``client_msg_id`` stores one message, also across an
outage; ``stream()`` survives a server restart (SIGTERM and SIGKILL, both auth modes) and yields
every change made meanwhile exactly once, in order; the server API client; the sync client."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

import pytest

from hubbub.client import (
    AsyncHubbub,
    AsyncServerClient,
    AuthError,
    Connected,
    Event,
    Hubbub,
    HubbubError,
    MessageEdited,
    NewMessage,
    Notification,
    RoomAdded,
    RoomRemoved,
    ServerClient,
)
from tests.support import PASSWORD, Server, free_port, signup

KEY = "sdk-server-key-0123456789abcdef"
HEAVY = [
    *("fastapi", "starlette", "sqlalchemy", "uvicorn", "alembic", "asyncpg", "redis"),
    *("argon2", "jwt", "pydantic", "prometheus_client", "typer", "websockets", "uvloop"),
]


@pytest.fixture(scope="module")
def trust_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("sdk-trust"),
        auth="trust",
        env={"HUBBUB_SERVER_KEY": KEY, "HUBBUB_RATE_LIMIT_BURST": "1000"},
    )
    server.start()
    yield server
    server.stop()


def room() -> str:
    return "r" + uuid.uuid4().hex[:10]


def test_the_sdk_imports_without_the_server_dependencies() -> None:
    code = (
        "import sys, hubbub.client\n"
        f"heavy = {HEAVY!r}\n"
        "print(','.join(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "", f"hubbub.client pulled in: {out.stdout}"


class Collector:
    """Iterates ``stream()`` in a task and keeps every event."""

    def __init__(self, agen: AsyncGenerator[Event, None]) -> None:
        self.agen = agen
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for event in self.agen:
                self.events.append(event)
        except Exception as exc:
            self.error = exc

    def texts(self, room_id: str) -> list[str]:
        return [
            e.message.text
            for e in self.events
            if isinstance(e, NewMessage) and e.message.room_id == room_id
        ]

    def connects(self) -> int:
        return sum(isinstance(e, Connected) for e in self.events)

    async def until(self, check: object, timeout: float = 30) -> None:
        assert callable(check)
        deadline = asyncio.get_running_loop().time() + timeout
        while not check():
            assert self.error is None, self.error
            assert asyncio.get_running_loop().time() < deadline, self.events[-5:]
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.agen.aclose()


async def test_send_retried_with_one_client_msg_id_stores_one_message(trust_api: Server) -> None:
    r = room()
    async with AsyncHubbub(trust_api.url, user_id="ann") as ann:
        first = await ann.send(r, "once", client_msg_id="cm-1")
        again = await ann.send(r, "once", client_msg_id="cm-1")
        assert again.id == first.id and again.seq == first.seq == 1
        with pytest.raises(HubbubError) as info:
            await ann.send(r, "another body", client_msg_id="cm-1")
        assert info.value.status == 409 and info.value.code == "idempotency_conflict"
        concurrent = await asyncio.gather(
            *(ann.send(r, "burst", client_msg_id="cm-2") for _ in range(10))
        )
        assert len({m.id for m in concurrent}) == 1
        assert [m.text for m in await ann.history(r)] == ["once", "burst"]


async def test_send_retries_through_an_outage_and_stores_once(tmp_path: Path) -> None:
    server = Server(tmp_path / "d", auth="trust", port=free_port()).start()
    r = room()
    async with AsyncHubbub(server.url, user_id="ann", max_backoff=0.5) as ann:
        await ann.send(r, "before")
        server.stop()
        pending = asyncio.create_task(ann.send(r, "during", client_msg_id="out-1", retries=40))
        await asyncio.sleep(1.0)
        assert not pending.done()
        await asyncio.to_thread(server.start)
        sent = await asyncio.wait_for(pending, 30)
        assert sent.text == "during"
        assert [m.text for m in await ann.history(r)] == ["before", "during"]
        with pytest.raises(HubbubError) as info:
            await ann.send("no such room!", "x", retries=1)
        assert info.value.status in (404, 422)
    server.stop()
    async with AsyncHubbub(server.url, user_id="ann", max_backoff=0.05) as ann:
        with pytest.raises(HubbubError) as info:
            await ann.send(r, "nobody listens", retries=2)
        assert info.value.status == 0 and info.value.code == "unreachable"


@pytest.mark.parametrize(
    ("auth", "sig"), [("trust", signal.SIGKILL), ("jwt", signal.SIGTERM), ("trust", signal.SIGTERM)]
)
async def test_stream_survives_a_restart_with_nothing_lost(
    tmp_path: Path, auth: str, sig: signal.Signals
) -> None:
    server = Server(tmp_path / "d", auth=auth, port=free_port()).start()
    try:
        r = room()
        if auth == "jwt":
            acct = await signup(server, "streamer")
            reader = await AsyncHubbub.login(server.url, acct.username, PASSWORD, max_backoff=1)
            writer = await AsyncHubbub.login(server.url, acct.username, PASSWORD)
            await writer.create_room(r)
            r = next(x.id for x in await writer.rooms() if x.name == r)
        else:
            reader = AsyncHubbub(server.url, user_id="reader", max_backoff=1)
            writer = AsyncHubbub(server.url, user_id="writer")
            await reader.join(r)
            await writer.join(r)
        async with reader, writer:
            seen = Collector(reader.stream())
            await seen.until(lambda: seen.connects() == 1)
            first = await writer.send(r, "m0")
            await seen.until(lambda: seen.texts(r) == ["m0"])
            server.stop(sig)
            await asyncio.to_thread(server.start)
            # sent while the reader is away (it backs off before reconnecting)
            for i in range(1, 21):
                await writer.send(r, f"m{i}")
            await writer.edit(first.id, "m0 edited while away")
            await seen.until(lambda: len(seen.texts(r)) >= 21)
            await seen.until(
                lambda: any(
                    isinstance(e, MessageEdited) and e.message.text == "m0 edited while away"
                    for e in seen.events
                )
            )
            for i in range(21, 26):  # and live again afterwards
                await writer.send(r, f"m{i}")
            await seen.until(lambda: len(seen.texts(r)) >= 26)
            await asyncio.sleep(0.3)
            assert seen.texts(r) == [f"m{i}" for i in range(26)]  # once each, in order
            seqs = [e.message.seq for e in seen.events if isinstance(e, NewMessage)]
            assert seqs == list(range(1, 27))
            assert seen.connects() >= 2
            edited = [e for e in seen.events if isinstance(e, MessageEdited)]
            assert len(edited) == 1 and edited[0].message.id == first.id
            await seen.stop()
    finally:
        server.stop()


async def test_stream_resumes_from_a_cursor_in_a_new_client(trust_api: Server) -> None:
    r = room()
    async with AsyncHubbub(trust_api.url, user_id="cur") as me:
        await me.join(r)
        seen = Collector(me.stream())
        await seen.until(lambda: seen.connects() == 1)
        await me.send(r, "a")
        await seen.until(lambda: seen.texts(r) == ["a"])
        await seen.stop()
        cursor = me.last_event_id
        assert cursor is not None
        await me.send(r, "b")
        await me.send(r, "c")
    async with AsyncHubbub(trust_api.url, user_id="cur") as again:
        later = Collector(again.stream(cursor))
        await later.until(lambda: later.texts(r) == ["b", "c"])
        await later.stop()


async def test_stream_with_a_dead_session_fails_clearly(tmp_path: Path) -> None:
    server = Server(tmp_path / "d", auth="jwt").start()
    try:
        acct = await signup(server, "dead")
        me = await AsyncHubbub.login(server.url, acct.username, PASSWORD)
        async with me:
            await me.logout()  # the session ends: its refresh token is spent too
            with pytest.raises(AuthError):
                await me.refresh()
            bad = AsyncHubbub(server.url, token="not-a-token")
            async with bad:
                with pytest.raises(AuthError):
                    async for _ in bad.stream():
                        pass
                with pytest.raises(AuthError):
                    await bad.rooms()
            # a spent refresh token: the refresh fails, so the 401 is raised
            stale = AsyncHubbub(server.url, token="expired", refresh_token="spent")
            async with stale:
                with pytest.raises(AuthError):
                    await stale.me()
    finally:
        server.stop()


async def test_jwt_refresh_on_401_keeps_going_and_reports_new_tokens(jwt_server: Server) -> None:
    acct = await signup(jwt_server, "refresh")
    got: list[str] = []
    me = await AsyncHubbub.login(
        jwt_server.url, acct.username, PASSWORD, on_tokens=lambda t: got.append(t.refresh_token)
    )
    async with me:
        assert len(got) == 1
        me.token = "garbage"  # as if it had expired: the next call refreshes once
        assert (await me.me()).id == acct.id
        assert len(got) == 2 and me.refresh_token == got[-1]


async def test_server_api_client(trust_api: Server) -> None:
    r = room()
    async with (
        AsyncServerClient(trust_api.url, KEY) as backend,
        AsyncHubbub(trust_api.url, user_id="sam") as sam,
    ):
        await sam.join(r)
        seen = Collector(sam.stream())
        await seen.until(lambda: seen.connects() == 1)
        system = await backend.post_message(r, "maintenance at noon", client_msg_id="sys-1")
        again = await backend.post_message(r, "maintenance at noon", client_msg_id="sys-1")
        assert system.type == "system" and again.id == system.id
        note = await backend.notify("sam", "order.shipped", {"order": 7})
        await seen.until(lambda: any(isinstance(e, Notification) for e in seen.events))
        got = next(e for e in seen.events if isinstance(e, Notification))
        assert (got.event, got.data, got.cursor) == ("order.shipped", {"order": 7}, note.id)
        assert seen.texts(r) == ["maintenance at noon"]

        user = await backend.provision_user("u-" + r, "prov_" + r[-6:])
        member = await backend.add_member(r, user.id)
        assert member.user_id == user.id
        assert user.id in {m.user_id for m in await sam.members(r)}
        await backend.remove_member(r, user.id)
        assert user.id not in {m.user_id for m in await sam.members(r)}
        await backend.delete_user(user.id)
        with pytest.raises(HubbubError) as info:
            await backend.delete_user(user.id)
        assert info.value.status == 404
        await seen.stop()
    async with AsyncServerClient(trust_api.url, "wrong-key") as wrong:
        with pytest.raises(HubbubError) as info:
            await wrong.notify("sam", "x", {})
        assert info.value.status == 403


async def test_membership_changes_arrive_as_typed_events(trust_api: Server) -> None:
    r = room()
    async with AsyncServerClient(trust_api.url, KEY) as backend:
        await backend.provision_user("tia")
        async with AsyncHubbub(trust_api.url, user_id="tia") as tia:
            await tia.join("lobby-" + r)
            seen = Collector(tia.stream())
            await seen.until(lambda: seen.connects() == 1)
            await AsyncHubbub(trust_api.url, user_id="own").join(r)
            await backend.add_member(r, "tia")
            await seen.until(lambda: any(isinstance(e, RoomAdded) for e in seen.events))
            await backend.remove_member(r, "tia")
            await seen.until(lambda: any(isinstance(e, RoomRemoved) for e in seen.events))
            added = next(e for e in seen.events if isinstance(e, RoomAdded))
            assert added.room.id == r and added.cursor
            await seen.stop()


async def test_rooms_history_search_and_files(trust_api: Server, tmp_path: Path) -> None:
    r = room()
    async with AsyncHubbub(trust_api.url, user_id="fay") as fay:
        await fay.join(r)
        for word in ["alpha apples", "beta bananas", "gamma grapes"]:
            await fay.send(r, word)
        assert r in {x.id for x in await fay.rooms()}
        assert [m.text for m in await fay.history(r, limit=2)] == ["beta bananas", "gamma grapes"]
        assert [m.text for m in await fay.history(r, before=2)] == ["alpha apples"]
        assert [m.text for m in await fay.history(r, after=2)] == ["gamma grapes"]
        hits = await fay.search("bananas", room_id=r)
        assert [h.text for h in hits.results] == ["beta bananas"]
        path = tmp_path / "notes.txt"
        path.write_bytes(b"hello file\n")
        msg = await fay.upload(r, path, content_type="text/plain", caption="see this")
        assert msg.type == "file" and msg.file is not None and msg.file.name == "notes.txt"
        assert await fay.download(msg) == b"hello file\n"
        edited = await fay.edit(msg.id, "see that")
        assert edited.text == "see that"
        await fay.react(msg.id, "👍")
        assert (await fay.history(r, limit=1))[0].reactions == {"👍": ["fay"]}
        assert (await fay.delete(msg.id)).deleted
        with pytest.raises(HubbubError) as info:
            await fay.edit("no-such-message", "x")
        assert info.value.status == 404 and info.value.message


def test_sync_client(trust_api: Server) -> None:
    r = room()
    with Hubbub(trust_api.url, user_id="syd") as syd, ServerClient(trust_api.url, KEY) as backend:
        syd.join(r)
        events = syd.stream()
        assert isinstance(next(events), Connected)
        syd.send(r, "sync hello")
        backend.post_message(r, "from the backend")
        texts = []
        for event in events:
            if isinstance(event, NewMessage):
                texts.append(event.message.text)
                if len(texts) == 2:
                    break
        events.close()
        assert texts == ["sync hello", "from the backend"]
        assert [m.text for m in syd.history(r)] == texts
        with pytest.raises(HubbubError):
            syd.edit("no-such-message", "x")
