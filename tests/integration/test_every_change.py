"""Every change, exactly once, to exactly the right people (API.md "Every change, on every
transport" and "Who receives what"), black-box over real HTTP and WebSocket.

A client that was away must end up showing exactly what the server holds: it loads the room,
follows it live, drops, misses edits, deletes, reactions (added and removed), joins, leaves and a
rename, and resumes from the last id it saw — on each transport. Its view, built only from what
it received, must equal the server's state, with no stored event twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support import Server, client, open_stream, say, signup, user

TRANSPORTS = ["sse", "events", "ws", "poll"]


def uniq(prefix: str) -> str:
    return prefix + secrets.token_hex(4)


# a client's view, built only from what it received ----------------------------------------


class View:
    """Messages (text, deleted, reactions), members and the room's name, as a client shows
    them: loaded once, then kept up to date by events alone."""

    def __init__(self, room: str) -> None:
        self.room = room
        self.messages: dict[str, dict[str, Any]] = {}
        self.members: set[str] = set()
        self.name = ""
        self.stored_ids: list[str] = []  # ids of stored events received (to find duplicates)
        self.last_id: str | None = None

    async def load(self, http: httpx.AsyncClient, who: dict[str, str]) -> None:
        history = (await http.get(f"/chat/room/{self.room}/history", headers=who)).json()
        for m in history:
            self.messages[m["id"]] = m
        members = (await http.get(f"/chat/room/{self.room}/members", headers=who)).json()
        self.members = {m["user_id"] for m in members["members"]}
        self.name = (await http.get(f"/chat/room/{self.room}", headers=who)).json()["name"]

    def apply(self, name: str, data: dict[str, Any], event_id: Any) -> None:
        if event_id is not None:
            self.last_id = str(event_id)
            if name not in ("connected",):
                self.stored_ids.append(f"{name}:{event_id}")
        room = data.get("room_id", data.get("id"))
        if name in ("message", "message_edited", "message_deleted"):
            if data["room_id"] == self.room:
                self.messages[data["id"]] = data
        elif name == "reaction" and room == self.room:
            msg = self.messages[data["message_id"]]
            who = msg["reactions"].setdefault(data["reaction"], [])
            if data["action"] == "added" and data["user_id"] not in who:
                who.append(data["user_id"])
            if data["action"] == "removed" and data["user_id"] in who:
                who.remove(data["user_id"])
            if not who:
                del msg["reactions"][data["reaction"]]
        elif name == "member_joined" and room == self.room:
            self.members.add(data["user_id"])
        elif name == "member_left" and room == self.room:
            self.members.discard(data["user_id"])
        elif name == "room_updated" and data["id"] == self.room:
            self.name = data["name"]

    def texts(self) -> list[str]:
        return [m["text"] for m in sorted(self.messages.values(), key=lambda m: m["seq"])]

    async def assert_matches_server(self, http: httpx.AsyncClient, who: dict[str, str]) -> None:
        truth = View(self.room)
        await truth.load(http, who)
        mine = {
            k: (m["text"], m["deleted"], _reactions(m), m["edited_at"])
            for k, m in self.messages.items()
        }
        theirs = {
            k: (m["text"], m["deleted"], _reactions(m), m["edited_at"])
            for k, m in truth.messages.items()
        }
        assert mine == theirs
        assert self.members == truth.members
        assert self.name == truth.name
        duplicates = {i for i in self.stored_ids if self.stored_ids.count(i) > 1}
        assert not duplicates, f"received twice: {sorted(duplicates)}"


def _reactions(m: dict[str, Any]) -> dict[str, list[str]]:
    return {k: sorted(v) for k, v in m["reactions"].items() if v}


# one client per transport -------------------------------------------------------------------


class Follower:
    """Follows one room over a transport, from a cursor (``None``: live only)."""

    def __init__(self, transport: str, base_url: str, who: dict[str, str], view: View) -> None:
        self.transport = transport
        self.base_url = base_url
        self.who = who
        self.view = view
        self.events: list[tuple[str, Any, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self._http = client(base_url)
        self._ws: ClientConnection | None = None
        self.closed = asyncio.Event()

    def _take(self, name: str, event_id: Any, data: Any) -> None:
        if isinstance(data, dict):
            self.events.append((name, event_id, data))
            self.view.apply(name, data, event_id)

    async def start(self, after: str | None) -> None:
        room = self.view.room
        if self.transport in ("sse", "events"):
            path = f"/chat/room/{room}/events" if self.transport == "sse" else "/chat/events"
            headers = dict(self.who)
            if after is not None:
                headers["Last-Event-ID"] = after
            request = self._http.build_request("GET", path, headers=headers)
            response = await self._http.send(request, stream=True)
            assert response.status_code == 200, (await response.aread()).decode()
            connected = asyncio.Event()
            self._task = asyncio.create_task(self._read_sse(response, connected))
            await asyncio.wait_for(connected.wait(), 10)
        elif self.transport == "ws":
            url = "ws" + self.base_url.removeprefix("http") + "/chat/ws"
            self._ws = await connect(
                url + "?" + urlencode({"user_id": self.who["User-ID"]}), ping_interval=None
            )
            op: dict[str, Any] = {"op": "subscribe", "room_id": room, "ref": 1}
            if after is not None:
                op["after_seq"] = int(after) if after.isdigit() else after
            await self._ws.send(json.dumps(op))
            while True:
                frame = json.loads(await asyncio.wait_for(self._ws.recv(), 10))
                if frame["event"] == "subscribed":
                    break
                assert frame["event"] != "error", frame
            self._task = asyncio.create_task(self._read_ws())
        else:
            self._task = asyncio.create_task(self._poll(after))

    async def _read_sse(self, response: httpx.Response, connected: asyncio.Event) -> None:
        name, data, event_id = "message", [], None
        try:
            async for line in response.aiter_lines():
                if line == "":
                    if data:
                        payload = json.loads("\n".join(data))
                        if name == "connected":
                            connected.set()
                        else:
                            self._take(name, event_id, payload)
                    name, data, event_id = "message", [], None
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("id:"):
                    event_id = line[3:].strip()
        except (httpx.HTTPError, asyncio.CancelledError):
            pass
        finally:
            self.closed.set()

    async def _read_ws(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                frame = json.loads(raw)
                self._take(frame["event"], frame.get("id"), frame.get("data"))
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def _poll(self, after: str | None) -> None:
        cursor = after
        try:
            while True:
                params: dict[str, Any] = {"changes": 1, "timeout": 1}
                if cursor is not None:
                    params["after"] = cursor
                r = await self._http.get(
                    f"/chat/room/{self.view.room}/poll", params=params, headers=self.who
                )
                assert r.status_code == 200, r.text
                body = r.json()
                for e in body["events"]:
                    self._take(e["event"], e["id"], e["data"])
                cursor = body["next"]
        except (httpx.HTTPError, asyncio.CancelledError):
            pass
        finally:
            self.closed.set()

    async def wait_text(self, text: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not any(
            n == "message" and d.get("text") == text and d.get("room_id") == self.view.room
            for n, _, d in self.events
        ):
            assert time.monotonic() < deadline, f"{text!r} never arrived: {self.events}"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._http.aclose()


@contextlib.asynccontextmanager
async def following(
    transport: str, base_url: str, who: dict[str, str], view: View, after: str | None
) -> AsyncIterator[Follower]:
    f = Follower(transport, base_url, who, view)
    await f.start(after)
    try:
        yield f
    finally:
        await f.stop()


async def react(http: httpx.AsyncClient, who: str, msg: dict[str, Any], emoji: str) -> None:
    r = await http.post(
        f"/chat/messages/{msg['id']}/reactions", headers=user(who), json={"reaction": emoji}
    )
    assert r.status_code in (200, 201), r.text


async def unreact(http: httpx.AsyncClient, who: str, msg: dict[str, Any], emoji: str) -> None:
    r = await http.delete(f"/chat/messages/{msg['id']}/reactions/{emoji}", headers=user(who))
    assert r.status_code == 200, r.text


async def edit(http: httpx.AsyncClient, who: str, msg: dict[str, Any], text: str) -> None:
    r = await http.patch(f"/chat/messages/{msg['id']}", headers=user(who), json={"message": text})
    assert r.status_code == 200, r.text


# resume covers every stored change -----------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_client_that_was_away_ends_up_with_the_servers_state(
    transport: str, trust_server: Server
) -> None:
    room, me, actor, third = uniq("every-"), uniq("me"), uniq("actor"), uniq("third")
    async with client(trust_server.url) as http:
        m1 = await say(http, actor, room, "one")
        m2 = await say(http, actor, room, "two")
        m3 = await say(http, actor, room, "three")
        assert (await http.post(f"/chat/room/{room}/join", headers=user(me))).status_code == 200
        view = View(room)
        await view.load(http, user(me))

        async with following(transport, trust_server.url, user(me), view, None) as live:
            await asyncio.sleep(0.2)
            await edit(http, actor, m1, "one, edited live")
            m4 = await say(http, actor, room, "four")
            await live.wait_text("four")
            await asyncio.sleep(0.2)
        assert view.last_id is not None
        away_from = view.last_id

        # While away: everything that can change.
        await edit(http, actor, m2, "two, first edit")
        await edit(http, actor, m2, "two, second edit")
        assert (
            await http.delete(f"/chat/messages/{m3['id']}", headers=user(actor))
        ).status_code == 200
        await react(http, actor, m4, "👍")
        await react(http, third, m2, "🎉")  # trust mode: reacting joins third
        await unreact(http, third, m2, "🎉")
        assert (await http.post(f"/chat/room/{room}/leave", headers=user(third))).json() == {
            "left": True
        }
        r = await http.patch(f"/chat/room/{room}", headers=user(actor), json={"name": "Renamed"})
        assert r.status_code == 200, r.text
        m5 = await say(http, actor, room, "five")
        await edit(http, actor, m5, "five, edited")

        async with following(transport, trust_server.url, user(me), view, away_from) as back:
            await say(http, actor, room, "the end")
            await back.wait_text("the end")
            await asyncio.sleep(0.3)
            names = {n for n, _, _ in back.events}
        assert {"message_edited", "message_deleted", "reaction", "room_updated"} <= names
        assert {"member_joined", "member_left"} <= names
        await view.assert_matches_server(http, user(me))
        assert view.texts()[-1] == "the end"
        assert view.name == "Renamed"


async def test_chat_events_replays_personal_changes(trust_server: Server) -> None:
    """/chat/events also resumes the user's own changes: rooms added and removed, read moves."""
    me, a, b = uniq("pc"), uniq("pa-"), uniq("pb-")
    async with client(trust_server.url) as http:
        await say(http, me, a, "mine")
        async with open_stream(http, "/chat/events", headers=user(me)) as s:
            await say(http, "other", a, "hello")
            await s.wait_messages(1)
            last = s.last_id()
        assert last is not None
        await say(http, "other", b, "b exists")
        assert (await http.post(f"/chat/room/{b}/join", headers=user(me))).status_code == 200
        r = await http.post(f"/chat/room/{a}/read", headers=user(me), json={"seq": 2})
        assert r.status_code == 200, r.text
        assert (await http.post(f"/chat/room/{a}/leave", headers=user(me))).status_code == 200
        async with open_stream(
            http, "/chat/events", headers={**user(me), "Last-Event-ID": last}
        ) as s:
            await say(http, "other", b, "live in b")
            await s.wait_for(lambda st: any(m["text"] == "live in b" for m in st.messages()))
            added = [e.json() for e in s.named("room_added")]
            removed = [e.json() for e in s.named("room_removed")]
            reads = [e.json() for e in s.named("read")]
            assert [r["id"] for r in added] == [b]
            assert removed == [{"room_id": a}]
            assert reads == [{"room_id": a, "user_id": me, "seq": 2}]
            assert all(e.id and e.id.startswith("g") for e in s.events if e.event != "presence")
            ids = [e.id for e in s.events if e.id]
            assert len(ids) == len(set(ids))


async def test_resume_from_a_change_id_on_a_room_stream(trust_server: Server) -> None:
    """A change's id (not a message seq) is as good a Last-Event-ID as a seq."""
    room = uniq("cid-")
    async with client(trust_server.url) as http:
        m = await say(http, "ann", room, "hello")
        async with open_stream(http, f"/chat/room/{room}/events", headers=user("ann")) as s:
            await edit(http, "ann", m, "hello again")
            await s.wait_for(lambda st: bool(st.named("message_edited")))
            change_id = s.named("message_edited")[0].id
        assert change_id is not None and change_id.startswith("r")
        await edit(http, "ann", m, "third text")
        await say(http, "ann", room, "later")
        async with open_stream(
            http, f"/chat/room/{room}/events", headers={**user("ann"), "Last-Event-ID": change_id}
        ) as s:
            await s.wait_messages(1)
            await asyncio.sleep(0.2)
            assert [e.json()["text"] for e in s.named("message_edited")] == ["third text"]
            assert [m["text"] for m in s.messages()] == ["later"]
        r = await http.get(
            f"/chat/room/{room}/events", headers={**user("ann"), "Last-Event-ID": "r12x"}
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"


async def test_replay_folds_repeated_edits_of_one_message(trust_server: Server) -> None:
    room = uniq("fold-")
    async with client(trust_server.url) as http:
        m = await say(http, "fay", room, "v0")
        for i in range(1, 6):
            await edit(http, "fay", m, f"v{i}")
        async with open_stream(
            http, f"/chat/room/{room}/events", headers={**user("fay"), "Last-Event-ID": "1"}
        ) as s:
            await say(http, "fay", room, "tail")
            await s.wait_messages(1)
            edits = [e.json()["text"] for e in s.named("message_edited")]
            assert edits == ["v5"]  # one event with the final text, not five


async def test_long_poll_changes_shape(trust_server: Server) -> None:
    room = uniq("lpc-")
    async with client(trust_server.url) as http:
        m = await say(http, "lou", room, "first")
        await edit(http, "lou", m, "first!")
        r = await http.get(
            f"/chat/room/{room}/poll", params={"after": 0, "changes": 1}, headers=user("lou")
        )
        body = r.json()
        assert [(e["event"], e["id"]) for e in body["events"]][-2:] == [
            ("message", 1),
            ("message_edited", body["next"]),
        ]
        r = await http.get(
            f"/chat/room/{room}/poll",
            params={"after": body["next"], "changes": 1, "timeout": 0.2},
            headers=user("lou"),
        )
        assert r.json() == {"events": [], "next": body["next"]}
        # Without changes=1: the message array, as before.
        r = await http.get(f"/chat/room/{room}/poll", params={"after": 0}, headers=user("lou"))
        assert [x["text"] for x in r.json()] == ["first!"]


async def test_new_public_rooms_are_announced_live(trust_server: Server) -> None:
    me = uniq("ann")
    async with client(trust_server.url) as http:
        await say(http, me, uniq("home-"), "hi")
        async with open_stream(http, "/chat/events", headers=user(me)) as s:
            fresh = uniq("fresh-")
            await say(http, "someone", fresh, "first words")
            await s.wait_for(lambda st: bool(st.named("room_created")))
            assert s.named("room_created")[0].json()["id"] == fresh
            assert s.named("room_created")[0].id is None  # live only


async def test_presence_snapshot_after_connect(trust_server: Server) -> None:
    room = uniq("snap-")
    async with client(trust_server.url) as http:
        await say(http, "sam", room, "hi")
        await say(http, "tia", room, "hi")
        async with open_stream(http, f"/chat/room/{room}/events", headers=user("sam")):
            await asyncio.sleep(0.2)
            async with open_stream(http, f"/chat/room/{room}/events", headers=user("tia")) as s:
                first = s.events[:3]
                online = {e.json()["user_id"] for e in first if e.event == "presence"}
                assert "sam" in online


# who receives what: access follows changes -----------------------------------------------------


async def test_leaving_stops_every_stream_of_the_room_within_a_second(
    trust_server: Server,
) -> None:
    room, me = uniq("bye-"), uniq("leaver")
    async with client(trust_server.url) as http:
        await say(http, me, room, "hi")
        view_ws, view_sse, view_all = View(room), View(room), View(room)
        async with (
            following("sse", trust_server.url, user(me), view_sse, None) as sse,
            following("events", trust_server.url, user(me), view_all, None) as events,
            following("ws", trust_server.url, user(me), view_ws, None) as ws,
        ):
            await say(http, "other", room, "before")
            for f in (sse, events, ws):
                await f.wait_text("before")
            left_at = time.monotonic()
            assert (
                await http.post(f"/chat/room/{room}/leave", headers=user(me))
            ).status_code == 200
            await asyncio.wait_for(sse.closed.wait(), 1.5)
            assert time.monotonic() - left_at < 1.5
            deadline = time.monotonic() + 1.5
            while not (
                any(n == "room_removed" for n, _, _ in events.events)
                and any(n == "room_removed" for n, _, _ in ws.events)
            ):
                assert time.monotonic() < deadline, (events.events, ws.events)
                await asyncio.sleep(0.02)
            await say(http, "other", room, "after")
            await asyncio.sleep(0.5)
            for f in (sse, events, ws):
                assert [d.get("text") for n, _, d in f.events if n == "message"] == ["before"]


async def test_an_admin_removes_a_member_of_a_private_room(jwt_server: Server) -> None:
    owner, member = await signup(jwt_server, "own"), await signup(jwt_server, "mem")
    async with client(jwt_server.url) as http:
        r = await http.post(
            "/chat/rooms", headers=owner.auth, json={"name": "secret", "visibility": "private"}
        )
        room = r.json()["id"]
        r = await http.post(
            f"/chat/room/{room}/members", headers=owner.auth, json={"user_id": member.id}
        )
        assert r.status_code == 201
        r = await http.delete(f"/chat/room/{room}/members/{owner.id}", headers=member.auth)
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_room_admin"
        async with open_stream(http, f"/chat/room/{room}/events", headers=member.auth) as s:
            await http.post(
                "/chat/messages", headers=owner.auth, json={"room_id": room, "message": "hi"}
            )
            await s.wait_messages(1)
            removed_at = time.monotonic()
            r = await http.delete(f"/chat/room/{room}/members/{member.id}", headers=owner.auth)
            assert r.status_code == 200 and r.json() == {"removed": True}
            await s.wait_for(lambda st: st.closed, 1.5)
            assert time.monotonic() - removed_at < 1.5
            assert [e.json()["user_id"] for e in s.named("member_left")] == [member.id]
        r = await http.get(f"/chat/room/{room}/history", headers=member.auth)
        assert r.status_code == 404
        r = await http.get(f"/chat/room/{room}/events", headers=member.auth)
        assert r.status_code == 404
        # Rename and visibility: admins only, streamed as room_updated.
        r = await http.patch(f"/chat/room/{room}", headers=member.auth, json={"name": "x"})
        assert r.status_code == 404  # no longer a member of a private room
        r = await http.patch(
            f"/chat/room/{room}", headers=owner.auth, json={"visibility": "public", "name": "Open"}
        )
        assert r.status_code == 200, r.text
        assert (r.json()["name"], r.json()["visibility"]) == ("Open", "public")
        r = await http.patch(f"/chat/room/{room}", headers=owner.auth, json={"name": ""})
        assert r.status_code == 422


async def test_reacting_needs_membership_in_jwt_mode(jwt_server: Server) -> None:
    owner, outsider = await signup(jwt_server, "rown"), await signup(jwt_server, "rout")
    async with client(jwt_server.url) as http:
        room = (await http.post("/chat/rooms", headers=owner.auth, json={"name": "pub"})).json()[
            "id"
        ]
        msg = (
            await http.post(
                "/chat/messages", headers=owner.auth, json={"room_id": room, "message": "hi"}
            )
        ).json()["message"]
        r = await http.post(
            f"/chat/messages/{msg['id']}/reactions", headers=outsider.auth, json={"reaction": "👍"}
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_a_member"


# trust mode: first use everywhere ------------------------------------------------------------


@pytest.mark.parametrize("first", ["join", "typing", "read", "events", "poll"])
async def test_trust_mode_first_use_creates_and_joins(first: str, trust_server: Server) -> None:
    room, me = uniq(f"first-{first}-"), uniq("fu")
    async with client(trust_server.url) as http:
        if first == "join":
            r = await http.post(f"/chat/room/{room}/join", headers=user(me))
            assert r.status_code == 200 and r.json()["joined"] is True, r.text
        elif first == "typing":
            r = await http.post(
                f"/chat/room/{room}/typing", headers=user(me), json={"is_typing": True}
            )
            assert r.status_code == 200, r.text
        elif first == "read":
            r = await http.post(f"/chat/room/{room}/read", headers=user(me), json={"seq": 0})
            assert r.status_code == 200, r.text
        elif first == "events":
            async with open_stream(http, f"/chat/room/{room}/events", headers=user(me)):
                pass
        else:
            r = await http.get(f"/chat/room/{room}/poll", params={"timeout": 0}, headers=user(me))
            assert r.status_code == 200, r.text
        members = (await http.get(f"/chat/room/{room}/members", headers=user(me))).json()
        assert [m["user_id"] for m in members["members"]] == [me]
        # …and sending by someone else afterwards works, in any order.
        await say(http, uniq("later"), room, "hello")


async def test_a_room_joined_by_sending_is_followed_by_an_open_stream(
    trust_server: Server,
) -> None:
    me = uniq("snd")
    async with client(trust_server.url) as http:
        await say(http, me, uniq("home-"), "hi")
        async with open_stream(http, "/chat/events", headers=user(me)) as s:
            fresh = uniq("bysend-")
            await say(http, me, fresh, "I made this room by sending")
            await s.wait_for(lambda st: any(m["room_id"] == fresh for m in st.messages()))
            await say(http, "friend", fresh, "and I followed")
            await s.wait_for(lambda st: any(m["text"] == "and I followed" for m in st.messages()))
            texts = [m["text"] for m in s.messages() if m["room_id"] == fresh]
            assert texts == ["I made this room by sending", "and I followed"]


# one send's failure is its own -----------------------------------------------------------------


async def test_a_poisoned_send_fails_alone_and_every_other_is_stored(
    tmp_path: Path,
) -> None:
    server = Server(
        tmp_path / "data",
        auth="trust",
        env={"HUBBUB_RATE_LIMIT_PER_SECOND": "0"},
    )
    server.start()
    try:
        # The fault: the database itself refuses one text (a trigger), as a constraint would.
        db = sqlite3.connect(tmp_path / "data" / "hubbub.db")
        db.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.text = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
        )
        db.commit()
        db.close()
        room = uniq("batch-")
        async with client(server.url) as http:
            await say(http, "warm", room, "warm up")

            async def send(i: int) -> httpx.Response:
                text = "poison" if i == 7 else f"good {i}"
                return await http.post(
                    "/chat/messages",
                    headers=user(f"u{i}"),
                    json={"room_id": room, "message": text},
                )

            for _ in range(3):  # concurrent sends share write batches
                responses = await asyncio.gather(*[send(i) for i in range(30)])
                statuses = [r.status_code for i, r in enumerate(responses) if i != 7]
                assert statuses == [201] * 29, [r.text for r in responses if r.status_code != 201]
                assert responses[7].status_code == 422
                assert responses[7].json()["error"]["code"] == "message_rejected"
            history = (
                await http.get(
                    f"/chat/room/{room}/history", params={"limit": 200}, headers=user("warm")
                )
            ).json()
            assert len(history) == 1 + 3 * 29
            assert "poison" not in [m["text"] for m in history]
            assert [m["seq"] for m in history] == list(range(1, len(history) + 1))
    finally:
        server.stop()


async def test_someone_who_joins_while_online_is_announced_online(trust_server: Server) -> None:
    room, newcomer = uniq("hello-"), uniq("newbie")
    async with client(trust_server.url) as http:
        await say(http, "host", room, "welcome")
        await say(http, newcomer, uniq("elsewhere-"), "I am around")
        async with (
            open_stream(http, "/chat/events", headers=user(newcomer)) as mine,
            open_stream(http, f"/chat/room/{room}/events", headers=user("host")) as s,
        ):
            assert (
                await http.post(f"/chat/room/{room}/join", headers=user(newcomer))
            ).status_code == 200
            await s.wait_for(
                lambda st: any(
                    e.json() == {"user_id": newcomer, "status": "online"}
                    for e in st.named("presence")
                ),
                5,
            )
            # …and the newcomer's own stream learns who of the room is online.
            await mine.wait_for(
                lambda st: any(e.json()["user_id"] == "host" for e in st.named("presence")), 5
            )


async def test_a_websocket_resumes_its_personal_changes(trust_server: Server) -> None:
    """The WebSocket is a user-level stream: `?after=<id>` replays the rooms added and removed
    and the read moves made while it was away, once each, then goes live."""
    me, a, b = uniq("wsp"), uniq("wa-"), uniq("wb-")
    url = "ws" + trust_server.url.removeprefix("http") + "/chat/ws"

    async def frames_until(ws: ClientConnection, done: Any) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while not done(seen):
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        return seen

    async with client(trust_server.url) as http:
        async with connect(url + "?" + urlencode({"user_id": me}), ping_interval=None) as ws:
            await say(http, me, a, "mine")
            got = await frames_until(ws, lambda s: any(f["event"] == "room_added" for f in s))
            last = [f for f in got if f["event"] == "room_added"][-1]["id"]
        assert isinstance(last, str) and last.startswith("g")
        await say(http, "other", b, "b exists")
        assert (await http.post(f"/chat/room/{b}/join", headers=user(me))).status_code == 200
        await say(http, "other", a, "news")
        r = await http.post(f"/chat/room/{a}/read", headers=user(me), json={"seq": 2})
        assert r.status_code == 200, r.text
        assert (await http.post(f"/chat/room/{a}/leave", headers=user(me))).status_code == 200
        query = urlencode({"user_id": me, "after": last})
        async with connect(f"{url}?{query}", ping_interval=None) as ws:
            got = await frames_until(ws, lambda s: any(f["event"] == "room_removed" for f in s))
            mine = [(f["event"], f["data"]) for f in got if "id" in f]
            assert [e for e, _ in mine] == ["room_added", "read", "room_removed"]
            assert mine[0][1]["id"] == b and mine[2][1] == {"room_id": a}
            ids = [f["id"] for f in got if "id" in f]
            assert len(ids) == len(set(ids)) and last not in ids
            await say(http, me, uniq("wc-"), "live again")  # and it goes live
            await frames_until(ws, lambda s: any(f["event"] == "room_added" for f in s))
        async with connect(url + "?" + urlencode({"user_id": me, "after": "x1"})) as ws:
            bad = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert bad["event"] == "error" and bad["data"]["code"] == "invalid_cursor"
