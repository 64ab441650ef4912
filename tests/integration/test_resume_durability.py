"""Resume after reconnect (no gap, no duplicate) and durability across kill -9."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support import Server, client, open_stream


async def test_resume_with_last_event_id_while_messages_flow(trust_server: Server) -> None:
    room = "resume1"
    async with client(trust_server.url) as http:

        async def send(i: int) -> int:
            r = await http.post(
                "/chat/messages",
                headers={"User-ID": "sender"},
                json={"room_id": room, "message": f"m{i}"},
            )
            assert r.status_code == 201
            return int(r.json()["message"]["seq"])

        async with open_stream(
            http, f"/chat/room/{room}/events", params={"user_id": "reader"}
        ) as first:
            for i in range(10):
                await send(i)
            await first.wait_messages(10)
            last_id = first.last_id()
        assert last_id == "10"

        # 50 more: some while the reader is away, some while it reconnects, some after.
        sent: list[int] = []

        async def flow() -> None:
            for i in range(10, 60):
                sent.append(await send(i))
                await asyncio.sleep(0.005)

        sender = asyncio.create_task(flow())
        await asyncio.sleep(0.08)
        async with open_stream(
            http,
            f"/chat/room/{room}/events",
            headers={"Last-Event-ID": last_id},
            params={"user_id": "reader"},
        ) as again:
            await sender
            msgs = await again.wait_messages(50, timeout=15)
            await asyncio.sleep(0.3)
            msgs = again.messages()
            assert [m["seq"] for m in msgs] == list(range(11, 61))
            assert [m["text"] for m in msgs] == [f"m{i}" for i in range(10, 60)]
            assert len(sent) == 50


async def test_resume_by_query_parameter(trust_server: Server) -> None:
    room = "resume2"
    async with client(trust_server.url) as http:
        for i in range(5):
            r = await http.post(
                "/chat/messages",
                headers={"User-ID": "w"},
                json={"room_id": room, "message": f"x{i}"},
            )
            assert r.status_code == 201
        async with open_stream(
            http, f"/chat/room/{room}/events", params={"user_id": "r", "last_event_id": "2"}
        ) as s:
            msgs = await s.wait_messages(3)
            assert [m["seq"] for m in msgs] == [3, 4, 5]
            r = await http.post(
                "/chat/messages",
                headers={"User-ID": "w"},
                json={"room_id": room, "message": "live"},
            )
            msgs = await s.wait_messages(4)
            assert [m["seq"] for m in msgs] == [3, 4, 5, 6]


async def test_fresh_stream_is_live_only(trust_server: Server) -> None:
    room = "fresh"
    async with client(trust_server.url) as http:
        r = await http.post(
            "/chat/messages", headers={"User-ID": "w"}, json={"room_id": room, "message": "old"}
        )
        assert r.status_code == 201
        async with open_stream(http, f"/chat/room/{room}/events", params={"user_id": "r"}) as s:
            await http.post(
                "/chat/messages", headers={"User-ID": "w"}, json={"room_id": room, "message": "new"}
            )
            msgs = await s.wait_messages(1)
            await asyncio.sleep(0.2)
            assert [m["text"] for m in s.messages()] == ["new"]
            assert msgs[0]["seq"] == 2


async def test_two_hundred_acknowledged_messages_survive_kill_9(data_dir: Path) -> None:
    server = Server(data_dir, auth="trust", env={"HUBBUB_RATE_LIMIT_PER_SECOND": "0"}).start()
    try:
        acked: dict[int, str] = {}
        async with client(server.url) as http:

            async def send(i: int) -> None:
                r = await http.post(
                    "/chat/messages",
                    headers={"User-ID": f"u{i % 7}"},
                    json={"room_id": "durable", "message": f"keep {i}"},
                )
                assert r.status_code == 201
                msg = r.json()["message"]
                acked[msg["seq"]] = msg["id"]

            for start in range(0, 200, 20):
                await asyncio.gather(*[send(i) for i in range(start, start + 20)])
        assert sorted(acked) == list(range(1, 201))
        server.kill()

        server = Server(data_dir, auth="trust", port=server.port).start()
        async with client(server.url) as http:
            history = (
                await http.get("/chat/room/durable/history", params={"user_id": "u0", "limit": 200})
            ).json()
            assert {m["seq"]: m["id"] for m in history} == acked
            r = await http.post(
                "/chat/messages",
                headers={"User-ID": "u0"},
                json={"room_id": "durable", "message": "after restart"},
            )
            assert r.status_code == 201
            assert r.json()["message"]["seq"] == 201
    finally:
        server.stop()


async def test_a_cursor_from_the_future_is_treated_as_now(trust_server: Server) -> None:
    """A cursor past the room's head (e.g. from a database that was reset) must not make a
    client wait for ever: every transport treats it as the current head."""
    room = "future"
    async with client(trust_server.url) as http:
        for text in ("a", "b"):
            r = await http.post(
                "/chat/messages", headers={"User-ID": "w"}, json={"room_id": room, "message": text}
            )
            assert r.status_code == 201
        async with open_stream(
            http, f"/chat/room/{room}/events", headers={"User-ID": "r", "Last-Event-ID": "1000"}
        ) as s:
            poll = asyncio.create_task(
                http.get(
                    f"/chat/room/{room}/poll",
                    params={"after": 1000, "timeout": 10},
                    headers={"User-ID": "r"},
                )
            )
            await asyncio.sleep(0.3)
            r = await http.post(
                "/chat/messages", headers={"User-ID": "w"}, json={"room_id": room, "message": "c"}
            )
            assert r.status_code == 201
            msgs = await s.wait_messages(1)
            assert [m["text"] for m in msgs] == ["c"]
            polled = (await poll).json()
            assert [m["text"] for m in polled] == ["c"]


async def test_many_resumes_under_concurrent_sends_never_duplicate(trust_server: Server) -> None:
    """Resume repeatedly while several senders commit: each replay is read from the store,
    which runs ahead of live delivery for an instant; the hand-off must not send twice."""
    room = "churn-resume"
    async with client(trust_server.url) as http:
        stop = asyncio.Event()

        async def sender(n: int) -> None:
            i = 0
            while not stop.is_set():
                r = await http.post(
                    "/chat/messages",
                    headers={"User-ID": f"s{n}"},
                    json={"room_id": room, "message": f"{n}-{i}"},
                )
                assert r.status_code == 201
                i += 1

        senders = [asyncio.create_task(sender(n)) for n in range(4)]
        last = 0
        try:
            for _ in range(15):
                async with open_stream(
                    http,
                    f"/chat/room/{room}/events",
                    headers={"User-ID": "r", "Last-Event-ID": str(last)},
                ) as s:
                    await s.wait_messages(5, timeout=10)
                    await asyncio.sleep(0.05)
                    seqs = [m["seq"] for m in s.messages()]
                assert seqs == list(range(last + 1, last + 1 + len(seqs))), seqs
                last = seqs[-1]
        finally:
            stop.set()
            await asyncio.gather(*senders)
