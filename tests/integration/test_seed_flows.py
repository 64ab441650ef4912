"""The seeds' own client flows, against a real server in trust mode (how the seeds run)."""

from __future__ import annotations

import asyncio

from tests.support import Server, client, open_stream


async def test_eventsource_and_fetch_exchange(trust_server: Server) -> None:
    """Seed snippet: EventSource(`/chat/room/${roomId}/events?user_id=…`) + fetch POST."""
    async with client(trust_server.url) as http:
        async with open_stream(http, "/chat/room/seed1/events", params={"user_id": "bob"}) as s:
            assert s.status == 200
            assert s.headers is not None
            assert s.headers["content-type"].startswith("text/event-stream")
            assert s.headers["cache-control"].startswith("no-cache")
            assert s.headers["x-accel-buffering"] == "no"
            assert s.events[0].event == "connected"
            assert s.retry is not None
            r = await http.post(
                "/chat/messages",
                headers={"User-ID": "alice"},
                json={"room_id": "seed1", "message": "Hello!", "timestamp": 1732370000123},
            )
            assert r.status_code == 201
            body = r.json()
            assert body["status"] == "sent"
            assert body["message"]["text"] == "Hello!"
            assert body["message"]["seq"] == 1
            assert body["message"]["timestamp"] == 1732370000123
            [msg] = await s.wait_messages(1)
            assert msg == body["message"]
            frame = [e for e in s.events if e.event == "message"][0]
            assert frame.id == "1"


async def test_react_hook_body_user_id_and_vue_guest(trust_server: Server) -> None:
    """React hook sends user_id in the body; the Vue component sends no identity at all."""
    async with client(trust_server.url) as http:
        async with open_stream(http, "/chat/room/seed2/events") as s:
            assert s.headers is not None
            assert "hubbub_guest=" in s.headers.get("set-cookie", "")
            r = await http.post("/chat/messages", json={"room_id": "seed2", "message": "vue hi"})
            assert r.status_code == 201, r.text
            guest = s.events[0].json()["user_id"]
            assert r.json()["message"]["user_id"] == guest
            r = await http.post(
                "/chat/messages",
                json={"room_id": "seed2", "user_id": "reacty", "message": "react hi"},
            )
            assert r.status_code == 201
            assert r.json()["message"]["user_id"] == "reacty"
            msgs = await s.wait_messages(2)
            assert [m["text"] for m in msgs] == ["vue hi", "react hi"]


async def test_history_pagination(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        for i in range(1, 121):
            r = await http.post(
                "/chat/messages",
                headers={"User-ID": "pager"},
                json={"room_id": "hist", "message": f"m{i}"},
            )
            assert r.status_code == 201
        newest = (await http.get("/chat/room/hist/history", params={"user_id": "pager"})).json()
        assert [m["seq"] for m in newest] == list(range(71, 121))
        page = (
            await http.get(
                "/chat/room/hist/history", params={"user_id": "pager", "before": 71, "limit": 50}
            )
        ).json()
        assert [m["seq"] for m in page] == list(range(21, 71))
        page = (
            await http.get(
                "/chat/room/hist/history", params={"user_id": "pager", "before": 21, "limit": 50}
            )
        ).json()
        assert [m["seq"] for m in page] == list(range(1, 21))
        fwd = (
            await http.get(
                "/chat/room/hist/history", params={"user_id": "pager", "after": 100, "limit": 10}
            )
        ).json()
        assert [m["seq"] for m in fwd] == list(range(101, 111))
        between = (
            await http.get(
                "/chat/room/hist/history", params={"user_id": "pager", "after": 5, "before": 9}
            )
        ).json()
        assert [m["text"] for m in between] == ["m6", "m7", "m8"]


async def test_message_reaches_two_others(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        async with (
            open_stream(http, "/chat/room/three/events", params={"user_id": "b"}) as b,
            open_stream(http, "/chat/room/three/events", params={"user_id": "c"}) as c,
        ):
            r = await http.post(
                "/chat/messages",
                headers={"User-ID": "a"},
                json={"room_id": "three", "message": "to both"},
            )
            assert r.status_code == 201
            for s in (b, c):
                msgs = await s.wait_messages(1)
                assert [m["text"] for m in msgs] == ["to both"]
                assert msgs[0]["user_id"] == "a"


async def test_load_100_concurrent_posts_three_subscribers(trust_server: Server) -> None:
    """Seed load test: 100 concurrent POSTs → 3 subscribers each get seq 1..100 once, in order."""
    async with client(trust_server.url) as http:
        async with (
            open_stream(http, "/chat/room/load/events", params={"user_id": "s1"}) as s1,
            open_stream(http, "/chat/room/load/events", params={"user_id": "s2"}) as s2,
            open_stream(http, "/chat/room/load/events", params={"user_id": "s3"}) as s3,
        ):
            results = await asyncio.gather(
                *[
                    http.post(
                        "/chat/messages",
                        headers={"User-ID": f"user_{i}"},
                        json={"room_id": "load", "message": f"msg {i}"},
                    )
                    for i in range(100)
                ]
            )
            assert all(r.status_code == 201 for r in results)
            assert sorted(r.json()["message"]["seq"] for r in results) == list(range(1, 101))
            for s in (s1, s2, s3):
                await s.wait_messages(100, timeout=20)
                await asyncio.sleep(0.2)
                seqs = [m["seq"] for m in s.messages()]
                assert seqs == list(range(1, 101))
                assert sorted(m["text"] for m in s.messages()) == sorted(
                    f"msg {i}" for i in range(100)
                )
