"""--retention-days: old messages (and their files) go; an older cursor gets `event: reset`."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.support import Server, client, open_stream


async def test_resume_from_before_retention_gets_reset_then_the_rest(data_dir: Path) -> None:
    server = Server(data_dir, auth="trust").start()
    try:
        async with client(server.url) as http:
            for i in range(6):
                r = await http.post(
                    "/chat/messages",
                    headers={"User-ID": "old"},
                    json={"room_id": "aging", "message": f"m{i + 1}"},
                )
                assert r.status_code == 201
    finally:
        server.stop()
    # Make the first four messages 30 days old, as if time had passed.
    db = sqlite3.connect(data_dir / "hubbub.db")
    db.execute("UPDATE messages SET created_at = '2000-01-01T00:00:00.000Z' WHERE seq <= 4")
    db.commit()
    db.close()

    server = Server(
        data_dir, auth="trust", args=["--retention-days", "7"], port=server.port
    ).start()
    try:
        async with client(server.url) as http:
            for _ in range(50):
                history = (
                    await http.get("/chat/room/aging/history", headers={"User-ID": "old"})
                ).json()
                if len(history) == 2:
                    break
                await asyncio.sleep(0.1)  # the purge runs as the server starts
            assert [m["seq"] for m in history] == [5, 6]
            async with open_stream(
                http, "/chat/room/aging/events", headers={"User-ID": "old", "Last-Event-ID": "1"}
            ) as s:
                msgs = await s.wait_messages(2)
                assert [e.event for e in s.events[:2]] == ["connected", "reset"]
                assert s.events[1].json() == {"room_id": "aging", "oldest_seq": 5}
                assert [m["seq"] for m in msgs] == [5, 6]
            async with open_stream(
                http, "/chat/room/aging/events", headers={"User-ID": "old", "Last-Event-ID": "5"}
            ) as s:
                msgs = await s.wait_messages(1)
                assert [m["seq"] for m in msgs] == [6]
                assert s.named("reset") == []
            r = await http.post(
                "/chat/messages",
                headers={"User-ID": "old"},
                json={"room_id": "aging", "message": "new"},
            )
            assert r.json()["message"]["seq"] == 7
    finally:
        server.stop()
