"""GET /chat/events: every room of mine on one stream, one cursor that resumes them all."""

from __future__ import annotations

import asyncio
import secrets

from tests.support import Server, assert_error, client, open_stream, say, user


async def test_three_rooms_one_stream_and_resume_with_a_room_joined_while_away(
    trust_server: Server,
) -> None:
    me, tag = "multi" + secrets.token_hex(3), secrets.token_hex(3)
    a, b, c, d = (f"{x}{tag}" for x in "abcd")
    async with client(trust_server.url) as http:
        for room in (a, b, c):
            await say(http, me, room, f"hello {room}")  # joins
        async with open_stream(http, "/chat/events", headers=user(me)) as s:
            hello = s.events[0].json()
            assert sorted(hello["rooms"]) == sorted([a, b, c])
            assert s.events[0].id == hello["cursor"]
            for i in range(3):
                for room in (a, b, c):
                    await say(http, "other", room, f"{room} {i}")
            msgs = await s.wait_messages(9)
            assert [(m["room_id"], m["text"]) for m in msgs] == [
                (room, f"{room} {i}") for i in range(3) for room in (a, b, c)
            ]
            ids = [e.id for e in s.events if e.event == "message"]
            assert len(set(ids)) == 9
            last = s.last_id()
            assert last is not None
            assert last.startswith("g")
        # Away: messages in my rooms, and I join room d (by invitation-free trust join).
        sent_while_away = []
        for room in (c, a):
            sent_while_away.append(await say(http, "other", room, f"missed in {room}"))
        await say(http, "other", d, "before I joined d")
        r = await http.post(f"/chat/room/{d}/join", headers=user(me))
        assert r.status_code == 200
        sent_while_away.append(await say(http, "other", d, "after I joined d"))
        sent_while_away.append(await say(http, "other", b, "missed in b"))
        async with open_stream(
            http, "/chat/events", headers={**user(me), "Last-Event-ID": last}
        ) as s:
            msgs = await s.wait_messages(5)  # d's first message predates my join? see below
            await asyncio.sleep(0.3)
            texts = [m["text"] for m in s.messages()]
            assert texts == [
                f"missed in {c}",
                f"missed in {a}",
                "before I joined d",
                "after I joined d",
                "missed in b",
            ]
            assert msgs[0]["id"] == sent_while_away[0]["id"]
            live = await say(http, "other", d, "live in d")
            msgs = await s.wait_messages(6)
            assert msgs[-1]["id"] == live["id"]


async def test_joining_a_room_while_connected_follows_it_without_gaps(
    trust_server: Server,
) -> None:
    me, room, other = "follow" + secrets.token_hex(3), "f" + secrets.token_hex(3), "x"
    home = "h" + secrets.token_hex(3)
    async with client(trust_server.url) as http:
        await say(http, me, home, "my home room")
        await say(http, other, room, "before")
        async with open_stream(http, "/chat/events", headers=user(me)) as s:
            sender = asyncio.ensure_future(
                asyncio.gather(*[say(http, other, room, f"during {i}") for i in range(10)])
            )
            r = await http.post(f"/chat/room/{room}/join", headers=user(me))
            assert r.status_code == 200
            await sender
            await say(http, other, room, "after")
            await s.wait_for(lambda st: any(m["text"] == "after" for m in st.messages()), 10)
            await asyncio.sleep(0.2)
            texts = [m["text"] for m in s.messages() if m["room_id"] == room]
            assert texts[-1] == "after"
            assert len(texts) == len(set(texts))  # nothing twice
            seqs = [m["seq"] for m in s.messages() if m["room_id"] == room]
            assert seqs == sorted(seqs)
            assert seqs == list(range(seqs[0], seqs[-1] + 1))  # no hole once followed
            joined = [e.json() for e in s.named("member_joined")]
            assert any(j["room_id"] == room and j["user_id"] == me for j in joined)


async def test_leaving_stops_delivery_and_bad_cursor_is_400(trust_server: Server) -> None:
    me, room = "leaver" + secrets.token_hex(3), "l" + secrets.token_hex(3)
    async with client(trust_server.url) as http:
        await say(http, me, room, "hi")
        async with open_stream(http, "/chat/events", headers=user(me)) as s:
            await say(http, "y", room, "one")
            await s.wait_messages(1)
            assert (await http.post(f"/chat/room/{room}/leave", headers=user(me))).json() == {
                "left": True
            }
            await s.wait_for(lambda st: bool(st.named("member_left")), 5)
            await say(http, "y", room, "two")
            await asyncio.sleep(0.5)
            assert [m["text"] for m in s.messages()] == ["one"]
        r = await http.get("/chat/events", headers={**user(me), "Last-Event-ID": "12"})
        assert_error(r, 400, "invalid_cursor")
        r = await http.get("/chat/events", params={"last_event_id": "gx"}, headers=user(me))
        assert_error(r, 400, "invalid_cursor")


async def test_needs_authentication_in_jwt_mode(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        r = await http.get("/chat/events")
        assert_error(r, 401)
