"""``GET /chat/ws`` specifics: frame limits, bad frames, Origin, token expiry, the ops and their
replies, and keep-alive that finds a dead peer. (What every transport must do — delivery,
ordering, resume, auth, slow clients — is in ``test_conformance.py``.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.test_conformance import RawWebSocket, uniq, ws_client_frame, ws_url
from tests.support import SECRET, Server, client, open_stream


class WS:
    """A ``websockets`` connection speaking Hubbub's JSON frames; frames read while looking
    for a particular one are kept in ``seen``."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.seen: list[dict[str, Any]] = []

    async def op(self, op: str, **fields: Any) -> None:
        await self.conn.send(json.dumps({"op": op, **fields}))

    async def expect(self, event: str, timeout: float = 5, **match: Any) -> dict[str, Any]:
        """The next frame named ``event`` whose top-level fields include ``match``."""
        deadline = time.monotonic() + timeout
        for i, frame in enumerate(self.seen):
            if frame["event"] == event and all(frame.get(k) == v for k, v in match.items()):
                return self.seen.pop(i)
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {event} {match}; saw {self.seen}"
            raw = await asyncio.wait_for(self.conn.recv(), remaining)
            assert isinstance(raw, str), raw  # the server only sends text frames
            frame = json.loads(raw)
            if frame["event"] == event and all(frame.get(k) == v for k, v in match.items()):
                return frame
            self.seen.append(frame)

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Everything that arrives in the next ``seconds``."""
        out = list(self.seen)
        self.seen.clear()
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                out.append(json.loads(await asyncio.wait_for(self.conn.recv(), remaining)))
            except TimeoutError:
                break
        return out

    async def subscribe(self, room: str, **fields: Any) -> dict[str, Any]:
        await self.op("subscribe", room_id=room, ref=f"sub-{room}", **fields)
        return await self.expect("subscribed", ref=f"sub-{room}")


@contextlib.asynccontextmanager
async def opened(base_url: str, user: str | None = None, **kw: Any) -> AsyncIterator[WS]:
    """A ``websockets`` connection to ``/chat/ws`` (trust mode: as ``user``)."""
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 10)
    conn = await connect(ws_url(base_url, {"user_id": user} if user else None), **kw)
    try:
        yield WS(conn)
    finally:
        await conn.close()


async def post(http: httpx.AsyncClient, user: str, room: str, text: str) -> dict[str, Any]:
    r = await http.post(
        "/chat/messages", headers={"User-ID": user}, json={"room_id": room, "message": text}
    )
    assert r.status_code == 201, r.text
    return dict(r.json()["message"])


async def closed_with(ws: WS, timeout: float = 5) -> tuple[int | None, list[dict[str, Any]]]:
    """Read until the server closes; (close code, the frames before it)."""
    frames: list[dict[str, Any]] = list(ws.seen)
    try:
        async with asyncio.timeout(timeout):
            while True:
                frames.append(json.loads(await ws.conn.recv()))
    except ConnectionClosed as exc:
        return (exc.rcvd.code if exc.rcvd else None), frames


# frames ------------------------------------------------------------------------------------


async def test_a_frame_over_64_kib_closes_with_1009(trust_server: Server) -> None:
    async with opened(trust_server.url, uniq("big")) as ws:
        # Just under the limit is fine...
        await ws.op("ping", ref="near", pad="x" * 60_000)
        assert (await ws.expect("pong", ref="near"))["data"] == {}
        # ...70 KB is not.
        await ws.op("ping", ref="over", pad="x" * 70_000)
        code, frames = await closed_with(ws)
        assert code == 1009, (code, frames)
        assert not [f for f in frames if f["event"] == "pong"]


async def test_bad_frames_get_an_error_and_the_connection_stays_usable(
    trust_server: Server,
) -> None:
    async with opened(trust_server.url, uniq("bad")) as ws:
        await ws.conn.send("{not json")
        error = await ws.expect("error")
        assert error["data"]["code"] == "malformed_json"
        assert isinstance(error["data"]["message"], str) and error["data"]["message"]

        await ws.op("ping", ref={"n": 1, "s": "α"})
        assert (await ws.expect("pong"))["ref"] == {"n": 1, "s": "α"}

        await ws.op("fly", ref=7)
        error = await ws.expect("error")
        assert error["data"]["code"] == "unknown_op"
        assert error["ref"] == 7

        await ws.conn.send(b'{"op": "ping", "ref": 8}')  # binary: not accepted, not fatal
        error = await ws.expect("error")
        assert error["data"]["code"] == "invalid_frame"

        for shape in ("[1, 2]", '{"op": 5}', '{"ref": 9}', '"ping"'):
            await ws.conn.send(shape)
            error = await ws.expect("error")
            assert error["data"]["code"] == "invalid_frame", (shape, error)

        await ws.op("subscribe", ref=10)  # no room_id
        error = await ws.expect("error", ref=10)
        assert error["data"]["code"] == "missing_field"

        await ws.op("ping", ref="still here")
        await ws.expect("pong", ref="still here")
        assert await ws.quiet() == []


async def test_an_out_of_range_after_seq_is_an_error_not_a_dropped_connection(
    trust_server: Server,
) -> None:
    """``after_seq`` past what a seq can be (SSE caps ``Last-Event-ID`` at 18 digits, long-poll
    ``after`` at 2**53) is a bad frame: an ``error``, nothing subscribed, the socket usable."""
    room = uniq("range")
    async with client(trust_server.url) as http:
        sent = await post(http, uniq("w"), room, "the only one")
    async with opened(trust_server.url, uniq("r")) as ws:
        for i, after in enumerate((2**63, 2**63 + 5, 2**64 + 5)):
            await ws.op("subscribe", room_id=room, after_seq=after, ref=i)
            frame = await ws.expect("error")
            assert frame["data"]["code"] in ("invalid_cursor", "invalid_frame"), frame
            await ws.op("ping", ref=f"alive {i}")
            await ws.expect("pong", ref=f"alive {i}")
        assert [f["event"] for f in ws.seen] == []  # in particular, no `subscribed`
        # Nothing was half done: a valid subscribe still works and replays.
        assert (await ws.subscribe(room, after_seq=0))["data"]["head_seq"] == 1
        assert (await ws.expect("message"))["data"] == sent


def flood_without_reading(port: int, user: str, frames: int, ref_bytes: int) -> str:
    """Send ``frames`` pings, each with a ``ref`` of ``ref_bytes`` (echoed in its pong), and
    never read a reply. Returns how the sending ended."""
    raw = RawWebSocket.connect(port, f"/chat/ws?user_id={user}", rcvbuf=4096)
    raw.sock.settimeout(5)
    frame = ws_client_frame(json.dumps({"op": "ping", "ref": "x" * ref_bytes}).encode())
    try:
        for _ in range(frames):
            raw.sock.sendall(frame)
    except (BrokenPipeError, ConnectionResetError):
        return "cut off"
    except TimeoutError:
        return "back-pressure"  # the server stopped reading our ops: fine too
    finally:
        raw.close()
    return "all sent"


async def test_a_client_that_never_reads_its_replies_cannot_grow_server_memory(
    trust_server: Server,
) -> None:
    """Replies (pong, ack, error) go through the same bounded buffer as room events: a client
    that sends ops but never reads what comes back is cut off (or throttled), it does not make
    the server hold every reply in memory (here 2000 pongs of 60 kB: 120 MB)."""
    rss_before = trust_server.rss_kib()
    how = await asyncio.to_thread(
        flood_without_reading, trust_server.port, uniq("deaf"), 2000, 60_000
    )
    await asyncio.sleep(1)
    grown_mib = (trust_server.rss_kib() - rss_before) / 1024
    print(f"deaf WebSocket client: {how}; server RSS grew {grown_mib:.0f} MiB")
    assert grown_mib < 32, (
        f"the server buffered {grown_mib:.0f} MiB of replies nobody reads ({how})"
    )
    async with opened(trust_server.url, uniq("after")) as ws:  # and it still serves others
        await ws.op("ping", ref=1)
        await ws.expect("pong", ref=1)


# handshake ---------------------------------------------------------------------------------


async def test_a_foreign_origin_is_refused_and_our_own_accepted(trust_server: Server) -> None:
    url = ws_url(trust_server.url, {"user_id": uniq("o")})
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, origin="http://evil.example", open_timeout=10)  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403

    own = f"http://127.0.0.1:{trust_server.port}"
    async with connect(url, origin=own, open_timeout=10) as conn:  # type: ignore[arg-type]
        ws = WS(conn)
        await ws.op("ping", ref=1)
        await ws.expect("pong", ref=1)


async def test_an_expired_token_gets_token_expired_then_1008(jwt_server: Server) -> None:
    name, password = uniq("exp").replace("-", "_"), "correct horse battery"
    async with client(jwt_server.url) as http:
        r = await http.post("/auth/register", json={"username": name, "password": password})
        assert r.status_code == 201, r.text
        user_id = r.json()["id"]
    now = int(time.time())

    def token(exp: int) -> dict[str, str]:
        signed = jwt.encode({"sub": user_id, "iat": now - 3600, "exp": exp}, SECRET, "HS256")
        return {"Authorization": f"Bearer {signed}"}

    async with opened(jwt_server.url, additional_headers=token(now - 60)) as ws:
        code, frames = await closed_with(ws)
    assert code == 1008
    assert [f["event"] for f in frames] == ["error"]
    assert frames[0]["data"]["code"] == "token_expired"

    # The control: the same token, not expired, is let in.
    async with opened(jwt_server.url, additional_headers=token(now + 600)) as ws:
        await ws.op("ping", ref="ok")
        await ws.expect("pong", ref="ok")


# ops ---------------------------------------------------------------------------------------


async def test_send_is_acked_with_the_stored_message_and_fanned_out(trust_server: Server) -> None:
    room, alice, bob = uniq("send"), uniq("alice"), uniq("bob")
    async with opened(trust_server.url, alice) as a, opened(trust_server.url, bob) as b:
        await a.subscribe(room)
        await b.subscribe(room)
        await a.op("send", room_id=room, message="hello ✓", ref=["r", 1], client_msg_id="c-1")
        ack = await a.expect("ack")
        assert ack["ref"] == ["r", 1]
        msg = ack["data"]
        assert msg["room_id"] == room and msg["seq"] == 1
        assert msg["user_id"] == alice and msg["text"] == "hello ✓"
        assert msg["client_msg_id"] == "c-1"

        got = await b.expect("message")
        assert got == {"event": "message", "id": 1, "data": msg}
        mine = await a.expect("message")  # the sender's own subscription too, like SSE
        assert mine == got

        # A retry with the same client_msg_id is the same message, not a second one.
        await a.op("send", room_id=room, message="hello ✓", ref=2, client_msg_id="c-1")
        assert (await a.expect("ack", ref=2))["data"] == msg
        assert [f for f in await b.quiet() if f["event"] == "message"] == []

    async with client(trust_server.url) as http:
        r = await http.get(f"/chat/room/{room}/history", headers={"User-ID": bob})
        assert r.json() == [msg]


async def test_send_errors_come_back_with_the_ref(trust_server: Server) -> None:
    room = uniq("senderr")
    async with opened(trust_server.url, uniq("e")) as ws:
        await ws.op("send", room_id=room, message="   ", ref="blank")
        assert (await ws.expect("error", ref="blank"))["data"]["code"] == "empty_message"
        await ws.op("send", room_id=room, ref="none")
        assert (await ws.expect("error", ref="none"))["data"]["code"] == "missing_field"


async def test_typing_and_read_reach_the_other_members(trust_server: Server) -> None:
    room, alice, bob = uniq("tr"), uniq("alice"), uniq("bob")
    async with opened(trust_server.url, alice) as a, opened(trust_server.url, bob) as b:
        await a.subscribe(room)
        await b.subscribe(room)
        await b.op("send", room_id=room, message="one", ref="s1")
        await b.op("send", room_id=room, message="two", ref="s2")
        await b.expect("ack", ref="s2")

        await a.op("typing", room_id=room, is_typing=True, ref="t")
        ok = await a.expect("ok", ref="t")
        assert ok["data"]["room_id"] == room
        typing = await b.expect("typing")
        assert typing["data"] == {
            "user_id": alice,
            "room_id": room,
            "is_typing": True,
            "username": alice,
        }

        await a.op("read", room_id=room, seq=2, ref="r")
        ok = await a.expect("ok", ref="r")
        assert ok["data"]["room_id"] == room
        assert ok["data"]["seq"] == 2 and ok["data"]["unread"] == 0
        read = await b.expect("read")
        assert read["data"] == {"room_id": room, "user_id": alice, "seq": 2}

        await a.op("read", room_id=room, seq=99, ref="past")
        assert (await a.expect("error", ref="past"))["data"]["code"] == "invalid_seq"
        # The typist does not hear its own typing.
        assert [f for f in await a.quiet() if f["event"] == "typing"] == []


async def test_subscribe_reports_the_head_and_unsubscribe_stops_delivery(
    trust_server: Server,
) -> None:
    room, empty, user = uniq("head"), uniq("empty"), uniq("u")
    async with client(trust_server.url) as http:
        for i in range(3):
            await post(http, uniq("w"), room, f"m{i}")
        async with opened(trust_server.url, user) as ws:
            sub = await ws.subscribe(room)
            assert sub["data"] == {"room_id": room, "head_seq": 3}
            assert (await ws.subscribe(empty))["data"] == {"room_id": empty, "head_seq": 0}
            assert [f for f in await ws.quiet() if f["event"] == "message"] == []  # live only

            await ws.op("subscribe", room_id=room, ref="again")
            assert (await ws.expect("error", ref="again"))["data"]["code"] == "already_subscribed"

            await post(http, uniq("w"), room, "live")
            assert (await ws.expect("message", id=4))["data"]["text"] == "live"

            await ws.op("unsubscribe", room_id=room, ref="u")
            assert (await ws.expect("unsubscribed", ref="u"))["data"] == {"room_id": room}
            await post(http, uniq("w"), room, "not for you")
            await post(http, uniq("w"), empty, "still for you")
            frames = [f for f in await ws.quiet(0.5) if f["event"] == "message"]
            assert [(f["data"]["room_id"], f["id"]) for f in frames] == [(empty, 1)]


# keep-alive and presence -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ping_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("wsping"),
        auth="trust",
        args=["--presence-grace", "0.5"],
        env={
            "HUBBUB_WS_PING_INTERVAL": "0.5",
            "HUBBUB_WS_PING_TIMEOUT": "0.5",
            "HUBBUB_RATE_LIMIT_PER_SECOND": "0",
        },
    ).start()
    yield server
    server.stop()


async def ws_gauge(http: httpx.AsyncClient) -> float:
    text = (await http.get("/metrics")).text
    found = re.search(r'^hubbub_connections\{transport="websocket"\} (\S+)$', text, re.M)
    assert found is not None, "hubbub_connections{transport=websocket} missing"
    return float(found.group(1))


def presence_of(stream: Any, user: str) -> list[str]:
    return [e.json()["status"] for e in stream.named("presence") if e.json()["user_id"] == user]


async def test_a_peer_that_never_answers_pings_is_dropped(ping_server: Server) -> None:
    room, ghost, watcher = uniq("dead"), uniq("ghost"), uniq("watcher")
    async with client(ping_server.url) as http:
        await post(http, ghost, room, "boo")  # a member, so the room hears its presence
        assert await ws_gauge(http) == 0
        async with open_stream(
            http, f"/chat/room/{room}/events", headers={"User-ID": watcher}
        ) as obs:
            raw = await asyncio.to_thread(
                RawWebSocket.connect, ping_server.port, f"/chat/ws?user_id={ghost}"
            )
            started = time.monotonic()
            try:
                await obs.wait_for(lambda s: presence_of(s, ghost) == ["online"], timeout=5)
                assert await ws_gauge(http) == 1
                # The ghost reads nothing and answers nothing: the server's pings go unanswered.
                while await ws_gauge(http) != 0:
                    assert time.monotonic() - started < 5, "the dead peer is still connected"
                    await asyncio.sleep(0.1)
                dropped = time.monotonic() - started
                await obs.wait_for(
                    lambda s: presence_of(s, ghost) == ["online", "offline"], timeout=5
                )
                offline = time.monotonic() - started
            finally:
                raw.close()
    print(f"dead peer dropped after {dropped:.2f} s, offline after {offline:.2f} s")
    assert dropped >= 0.5  # not before a ping could have been answered


async def test_a_websocket_only_user_is_online(ping_server: Server) -> None:
    room, ws_user, asker = uniq("pres"), uniq("wsonly"), uniq("asker")

    async def presence(http: httpx.AsyncClient) -> str:
        r = await http.get(f"/chat/room/{room}/members", headers={"User-ID": asker})
        assert r.status_code == 200, r.text
        found = [m for m in r.json()["members"] if m["user_id"] == ws_user]
        assert found, r.json()
        return str(found[0]["presence"])

    async with client(ping_server.url) as http:
        await post(http, asker, room, "anyone?")
        async with opened(ping_server.url, ws_user) as ws:  # answers pings by itself
            await ws.subscribe(room)  # trust mode: subscribing joins
            assert await presence(http) == "online"
            await asyncio.sleep(1.5)  # several ping rounds: a live peer stays
            assert await presence(http) == "online"
            await ws.op("ping", ref=1)
            await ws.expect("pong", ref=1)
        deadline = time.monotonic() + 5
        while await presence(http) != "offline":
            assert time.monotonic() < deadline, "still online after the socket closed"
            await asyncio.sleep(0.1)
