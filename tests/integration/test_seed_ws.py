"""``GET /ws/chat``: seed 000's SolidJS ``useWebSocket('/ws/chat')`` chat, over the wire.

The seed's client sends ``{"type": "message", "text": …}`` and shows ``msg.text`` of every frame
it receives, so: each frame is one bare message JSON of the socket's room, nothing else, and a
bad frame is answered with ``{"type": "error", …}`` while the socket stays usable. Trust mode
(the seed runs unchanged) and jwt mode (session cookie, Bearer or ticket; a private room needs
membership; logout and removal end the socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.test_conformance import RawWebSocket, uniq
from tests.integration.test_sessions import Session, login, register, ticket
from tests.support import Server, client, say

MESSAGE_FIELDS = {"id", "room_id", "seq", "user_id", "username", "type", "text", "created_at"}


def url_of(server: Server, params: dict[str, str] | None = None) -> str:
    base = "ws" + server.url.removeprefix("http") + "/ws/chat"
    return base + ("?" + urlencode(params) if params else "")


class Chat:
    """One ``/ws/chat`` socket; frames read while looking for one are kept in ``seen``."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.seen: list[dict[str, Any]] = []

    async def say(self, text: Any, **extra: Any) -> None:
        await self.conn.send(json.dumps({"type": "message", "text": text, **extra}))

    async def next(self, timeout: float = 5) -> dict[str, Any]:
        if self.seen:
            return self.seen.pop(0)
        raw = await asyncio.wait_for(self.conn.recv(), timeout)
        assert isinstance(raw, str), raw  # text frames only: the seed JSON.parses each
        frame = json.loads(raw)
        assert isinstance(frame, dict), frame
        return frame

    async def message(self, text: str, timeout: float = 5) -> dict[str, Any]:
        """The message with ``text``; frames before it are kept."""
        deadline = time.monotonic() + timeout
        for i, frame in enumerate(self.seen):
            if frame.get("text") == text:
                return self.seen.pop(i)
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no message {text!r}; saw {self.seen}"
            raw = await asyncio.wait_for(self.conn.recv(), remaining)
            frame = json.loads(raw)
            if frame.get("text") == text:
                return dict(frame)
            self.seen.append(frame)

    async def error(self, timeout: float = 5) -> dict[str, Any]:
        frame = await self.next(timeout)
        assert frame.get("type") == "error", frame
        assert set(frame) == {"type", "error"}, frame
        error: dict[str, Any] = frame["error"]
        assert error["code"] and error["message"], frame
        return error

    async def quiet(self, seconds: float = 0.4) -> list[dict[str, Any]]:
        out, self.seen = list(self.seen), []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                out.append(json.loads(await asyncio.wait_for(self.conn.recv(), remaining)))
            except TimeoutError:
                break
        return out

    async def closed(self, timeout: float = 5) -> tuple[int | None, list[dict[str, Any]]]:
        frames = list(self.seen)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    frames.append(json.loads(await self.conn.recv()))
        except ConnectionClosed as exc:
            return (exc.rcvd.code if exc.rcvd else None), frames


@contextlib.asynccontextmanager
async def chat(
    server: Server, params: dict[str, str] | None = None, **kw: Any
) -> AsyncIterator[Chat]:
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 10)
    conn = await connect(url_of(server, params), **kw)
    try:
        yield Chat(conn)
    finally:
        await conn.close()


async def history(server: Server, room: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    async with client(server.url) as http:
        r = await http.get(f"/chat/room/{room}/history", params={"limit": 200}, headers=headers)
        assert r.status_code == 200, r.text
        out: list[dict[str, Any]] = r.json()
        return out


async def live(sender: Chat, *receivers: Chat) -> None:
    """A fresh socket is live only: once a message of the sender's reaches every receiver,
    all of them are known to be attached."""
    text = uniq("warm-up")
    await sender.say(text)
    for r in (sender, *receivers):
        await r.message(text)


# trust mode -----------------------------------------------------------------------------------


async def test_two_clients_see_each_others_messages_once_in_order(trust_server: Server) -> None:
    room = uniq("seedws")
    async with (
        chat(trust_server, {"room": room, "user_id": "ann"}) as ann,
        chat(trust_server, {"room": room, "user_id": "bob"}) as bob,
    ):
        await live(ann, bob)
        texts = [f"{who} {i}" for i in range(10) for who in ("ann", "bob")]
        for text in texts:
            await (ann if text.startswith("ann") else bob).say(text)
        for receiver in (ann, bob):
            got = [await receiver.next() for _ in texts]
            assert [m["text"] for m in got] == texts  # each once, in the order sent
            seqs = [m["seq"] for m in got]
            assert seqs == list(range(seqs[0], seqs[0] + len(texts)))
            assert {m["user_id"] for m in got} == {"ann", "bob"}
            for m in got:
                assert set(m) >= MESSAGE_FIELDS, m  # the message JSON itself, no envelope
                assert m["room_id"] == room and m["type"] == "text"
            assert await receiver.quiet() == []  # and nothing more
    stored = await history(trust_server, room, {"User-ID": "ann"})
    assert [m["text"] for m in stored][-len(texts) :] == texts


async def test_a_socket_is_listening_once_it_is_open(trust_server: Server) -> None:
    """No warm-up needed: a message sent the moment the socket has opened reaches it (it joins
    the room's listeners before the handshake's answer is written)."""
    async with client(trust_server.url) as http:
        for i in range(15):
            room = uniq("open")
            async with chat(trust_server, {"room": room, "user_id": "ivy"}) as ivy:
                posted = await say(http, "jon", room, f"right away {i}")
                assert (await ivy.next())["id"] == posted["id"]


async def test_the_default_room_is_general_and_a_sent_message_is_stored_first(
    trust_server: Server,
) -> None:
    text = uniq("hello general")
    async with chat(trust_server, {"user_id": uniq("gen")}) as me:
        await me.say(text, client_msg_id=uniq("c"), timestamp=1700000000000)
        got = await me.message(text)
        assert got["room_id"] == "general"
        assert got["timestamp"] == 1700000000000
        # It reached us after it was stored: history already has it.
        stored = await history(trust_server, "general", {"User-ID": "sam"})
        assert got["id"] in [m["id"] for m in stored]


async def test_an_http_send_reaches_the_socket_and_other_events_do_not(
    trust_server: Server,
) -> None:
    room = uniq("quiet")
    async with chat(trust_server, {"room": room, "user_id": "cy"}) as cy:
        await live(cy)
        async with client(trust_server.url) as http:
            posted = await say(http, "dee", room, "from http")
            assert (await cy.next())["id"] == posted["id"]
            who = {"User-ID": "dee"}
            r = await http.post(f"/chat/room/{room}/typing", headers=who, json={"is_typing": True})
            assert r.status_code < 300, r.text
            r = await http.patch(
                f"/chat/messages/{posted['id']}", headers=who, json={"message": "edited"}
            )
            assert r.status_code == 200, r.text
            r = await http.post(
                f"/chat/messages/{posted['id']}/reactions", headers=who, json={"reaction": "👍"}
            )
            assert r.status_code < 300, r.text
            r = await http.post(f"/chat/room/{room}/leave", headers=who)
            assert r.status_code < 300, r.text
        # typing, edit, reaction, leave: nothing the seed's chat could show as a message
        assert await cy.quiet(0.6) == []


async def test_a_guest_is_named_by_a_cookie_set_on_the_handshake(trust_server: Server) -> None:
    async with chat(trust_server, {"room": uniq("guest")}) as guest:
        cookie = guest.conn.response.headers.get("set-cookie") if guest.conn.response else None
        assert cookie and cookie.startswith("hubbub_guest="), cookie
        await guest.say("who am i")
        got = await guest.message("who am i")
        assert got["user_id"] == cookie.split(";")[0].split("=", 1)[1]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "malformed_json"),
        ("[" * 64 + "]" * 64, "invalid_frame"),  # 64 levels is JSON, but not a frame
        ("[" * 65 + "]" * 65, "json_too_deep"),
        ('{"type": "message", "text": "x", "deep": ' + "[" * 70 + "]" * 70 + "}", "json_too_deep"),
        ('{"type": "message", "text": "\\ud800"}', "malformed_json"),  # a lone surrogate
        ('{"text": "no type"}', "invalid_frame"),
        ('{"type": "typing", "text": "x"}', "unknown_type"),
        ('{"type": "message"}', "missing_field"),
        ('{"type": "message", "text": 42}', "invalid_frame"),
        ('{"type": "message", "text": " \\u3000\\n"}', "empty_message"),
        (json.dumps({"type": "message", "text": "é" * 4001}), "message_too_long"),
        ('"just a string"', "invalid_frame"),
        ("null", "invalid_frame"),
    ],
)
async def test_a_bad_frame_gets_an_error_frame_and_the_socket_stays(
    trust_server: Server, frame: str, code: str
) -> None:
    room = uniq("bad")
    async with chat(trust_server, {"room": room, "user_id": "eve"}) as eve:
        await live(eve)
        await eve.conn.send(frame)
        assert (await eve.error())["code"] == code
        await eve.say("still here")
        assert (await eve.message("still here"))["user_id"] == "eve"
    texts = [m["text"] for m in await history(trust_server, room, {"User-ID": "eve"})]
    assert len(texts) == 2 and texts[1] == "still here"  # the warm-up and this: nothing else


async def test_binary_frames_are_refused_and_over_64_kib_closes_with_1009(
    trust_server: Server,
) -> None:
    async with chat(trust_server, {"room": uniq("big"), "user_id": "fay"}) as fay:
        await fay.conn.send(b'{"type": "message", "text": "bytes"}')
        assert (await fay.error())["code"] == "invalid_frame"
        await fay.say("x" * 3999 + "!")  # the longest text there is: fine
        assert (await fay.next())["text"].endswith("!")
        await fay.say("x" * 70_000)
        code, frames = await fay.closed()
        assert code == 1009, (code, frames)
        assert frames == []


def drain(raw: RawWebSocket) -> int:
    """Read until the server has closed the connection; the bytes read (-1: still open)."""
    got = len(raw.buf)
    raw.sock.settimeout(5)
    try:
        while chunk := raw.sock.recv(65536):
            got += len(chunk)
    except ConnectionResetError:
        pass
    except TimeoutError:
        return -1
    return got


async def test_a_socket_that_stops_reading_is_cut_off_and_others_go_on(data_dir: Path) -> None:
    """The hub's bound holds here too: a seed socket that reads nothing while its room is busy
    is dropped (its client reconnects); the server never holds the room's traffic for it."""
    server = Server(
        data_dir,
        auth="trust",
        env={"HUBBUB_RATE_LIMIT_PER_SECOND": "0", "HUBBUB_STREAM_BUFFER_BYTES": "262144"},
    ).start()
    room, count = "busy", 800
    raw = RawWebSocket.connect(server.port, f"/ws/chat?room={room}&user_id=deaf", rcvbuf=4096)
    try:
        async with chat(server, {"room": room, "user_id": "ear"}, max_queue=None) as ear:
            await live(ear)
            rss_before = server.rss_kib()
            text = "€" * 3990  # ~12 kB a frame: ~10 MB in all

            async def send_all() -> None:
                async with client(server.url) as http:
                    for start in range(0, count, 50):
                        await asyncio.gather(
                            *(
                                say(http, "loud", room, f"{i} {text}")
                                for i in range(start, start + 50)
                            )
                        )

            async def read_all() -> list[dict[str, Any]]:
                return [await ear.next(timeout=60) for _ in range(count)]

            got, _ = await asyncio.gather(read_all(), send_all())
            # the socket that reads gets everything, in order
            assert sorted(m["seq"] for m in got) == [m["seq"] for m in got]
            assert len({m["seq"] for m in got}) == count
            assert server.rss_kib() - rss_before < 64 * 1024
            drained = await asyncio.to_thread(drain, raw)
            assert 0 <= drained < count * 12_000 // 2, drained  # dropped, well short of it all
    finally:
        raw.close()
        server.stop()


async def test_a_foreign_origin_is_refused(trust_server: Server) -> None:
    url = url_of(trust_server, {"user_id": "gus"})
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, origin="http://evil.example", open_timeout=10)  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    own = f"http://127.0.0.1:{trust_server.port}"
    async with chat(trust_server, {"user_id": "gus"}, origin=own) as gus:
        await gus.say("same origin")
        await gus.message("same origin")


async def test_an_invalid_room_id_is_an_error_frame_then_4422(trust_server: Server) -> None:
    async with chat(trust_server, {"room": "bad room/..", "user_id": "hal"}) as hal:
        error = await hal.error()
        code, _ = await hal.closed()
    assert code == 4422, error


# jwt mode -------------------------------------------------------------------------------------


async def account(server: Server, prefix: str) -> Session:
    return await login(server, await register(server, prefix))


async def new_room(server: Server, owner: Session, visibility: str = "public") -> str:
    async with client(server.url) as http:
        r = await http.post(
            "/chat/rooms", headers=owner.auth, json={"name": "seed", "visibility": visibility}
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


async def test_jwt_needs_credentials(jwt_server: Server) -> None:
    async with chat(jwt_server) as nobody:
        error = await nobody.error()
        code, _ = await nobody.closed()
    assert code == 4401 and error["code"] == "not_authenticated"


async def test_jwt_cookie_ticket_and_token_join_a_public_room(jwt_server: Server) -> None:
    owner, guest = await account(jwt_server, "wsown"), await account(jwt_server, "wsgst")
    room = await new_room(jwt_server, owner)
    async with client(jwt_server.url) as http:
        once = await ticket(http, guest)
    async with (
        chat(jwt_server, {"room": room}, additional_headers=owner.cookie_header) as by_cookie,
        chat(jwt_server, {"room": room, "ticket": once}) as by_ticket,
    ):
        await live(by_cookie, by_ticket)
        await by_ticket.say("joined on connect")
        for c in (by_cookie, by_ticket):
            got = await c.message("joined on connect")
            assert got["user_id"] == guest.user_id and got["username"] == guest.username
    async with client(jwt_server.url) as http:
        r = await http.get(f"/chat/room/{room}/members", headers=owner.auth)
        assert r.status_code == 200, r.text
        assert guest.user_id in {m["user_id"] for m in r.json()["members"]}
    async with chat(jwt_server, {"room": room}, additional_headers=guest.auth) as by_token:
        await by_token.say("by token")
        assert (await by_token.message("by token"))["user_id"] == guest.user_id
    # A ticket opens one stream, once.
    async with chat(jwt_server, {"room": room, "ticket": once}) as again:
        assert (await again.error())["code"] == "invalid_ticket"
        assert (await again.closed())[0] == 4401


async def test_jwt_a_private_room_needs_membership(jwt_server: Server) -> None:
    owner, other = await account(jwt_server, "wsprv"), await account(jwt_server, "wsout")
    room = await new_room(jwt_server, owner, "private")
    async with chat(jwt_server, {"room": room}, additional_headers=other.auth) as outsider:
        error = await outsider.error()
        code, _ = await outsider.closed()
    assert (code, error["code"]) == (4404, "room_not_found")
    async with chat(jwt_server, {"room": room}, additional_headers=owner.auth) as member:
        await member.say("members only")
        await member.message("members only")


async def test_jwt_a_missing_room_is_created_public_on_first_use(jwt_server: Server) -> None:
    """The seed's client always opens ``general``: on a fresh server that must work too."""
    first, second = await account(jwt_server, "wsnew1"), await account(jwt_server, "wsnew2")
    room = uniq("fresh")
    async with (
        chat(jwt_server, {"room": room}, additional_headers=first.auth) as a,
        chat(jwt_server, {"room": room}, additional_headers=second.auth) as b,
    ):
        await a.say("first use")
        for c in (a, b):
            assert (await c.message("first use"))["user_id"] == first.user_id
    async with client(jwt_server.url) as http:
        r = await http.get(f"/chat/room/{room}", headers=second.auth)
        assert r.status_code == 200, r.text
        assert r.json()["visibility"] == "public"
        r = await http.get(f"/chat/room/{room}/members", headers=second.auth)
        members = {m["user_id"] for m in r.json()["members"]}
        assert {first.user_id, second.user_id} <= members
    async with chat(jwt_server, {}, additional_headers=first.auth) as general:
        await general.say("in general")
        assert (await general.message("in general"))["room_id"] == "general"


async def test_jwt_removal_and_logout_end_the_socket(jwt_server: Server) -> None:
    owner, member = await account(jwt_server, "wsadm"), await account(jwt_server, "wsmem")
    room = await new_room(jwt_server, owner, "private")
    async with client(jwt_server.url) as http:
        r = await http.post(
            f"/chat/room/{room}/members", headers=owner.auth, json={"user_id": member.user_id}
        )
        assert r.status_code < 300, r.text
        async with (
            chat(jwt_server, {"room": room}, additional_headers=member.auth) as removed,
            chat(jwt_server, {"room": room}, additional_headers=owner.auth) as stays,
        ):
            await live(stays, removed)
            r = await http.delete(f"/chat/room/{room}/members/{member.user_id}", headers=owner.auth)
            assert r.status_code < 300, r.text
            started = time.monotonic()
            code, frames = await removed.closed(2)
            assert code == 4403 and frames == [] and time.monotonic() - started < 1.5
            await stays.say("after removal")
            await stays.message("after removal")
        async with chat(jwt_server, {"room": room}, additional_headers=owner.auth) as mine:
            await live(mine)
            r = await http.post("/auth/logout", json={"refresh_token": owner.refresh})
            assert r.status_code == 200, r.text
            code, _ = await mine.closed(2)
            assert code == 4401
        async with chat(jwt_server, {"room": room}, additional_headers=owner.auth) as stale:
            assert (await stale.error())["code"] == "session_ended"
            assert (await stale.closed())[0] == 4401


async def test_jwt_sends_share_the_http_rate_limit(jwt_server: Server) -> None:
    me = await account(jwt_server, "wsrate")
    room = await new_room(jwt_server, me)
    async with chat(jwt_server, {"room": room}, additional_headers=me.auth) as c:
        for i in range(40):  # the default burst is 20
            await c.say(f"burst {i}")
        frames = [await c.next() for _ in range(40)]
        limited = [f for f in frames if f.get("type") == "error"]
        assert limited and {f["error"]["code"] for f in limited} == {"rate_limited"}
        assert len(frames) - len(limited) >= 20
    stored = await history(jwt_server, room, me.auth)
    assert len(stored) == 40 - len(limited)
