"""Keep-alive pings, stream headers, graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.support import Server, client, open_stream


async def test_pings_keep_an_idle_stream_alive(data_dir: Path) -> None:
    server = Server(data_dir, auth="trust", args=["--ping-interval", "0.3"]).start()
    try:
        async with client(server.url) as http:
            async with open_stream(
                http, "/chat/room/quiet/events", params={"user_id": "idle"}
            ) as s:
                assert s.headers is not None
                assert s.headers["content-type"] == "text/event-stream; charset=utf-8"
                assert "no-cache" in s.headers["cache-control"]
                assert s.headers["x-accel-buffering"] == "no"
                assert s.retry is not None and 3000 <= s.retry < 6000  # jittered
                await asyncio.sleep(1.2)
                assert len([c for c in s.comments if c.startswith(": ping")]) >= 2
                assert not s.closed
    finally:
        server.stop()


async def test_default_ping_interval_is_at_most_15_seconds(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        async with open_stream(http, "/chat/room/pings/events", params={"user_id": "p"}) as s:
            await s.wait_for(
                lambda st: any(c.startswith(": ping") for c in st.comments), timeout=16
            )


async def test_sigterm_closes_streams_finishes_sends_and_exits_zero(data_dir: Path) -> None:
    server = Server(data_dir, auth="trust", env={"HUBBUB_RATE_LIMIT_PER_SECOND": "0"}).start()
    acked: list[int] = []
    async with client(server.url) as http:
        async with open_stream(http, "/chat/room/bye/events", params={"user_id": "r"}) as s:

            async def keep_sending() -> None:
                i = 0
                while True:
                    try:
                        r = await http.post(
                            "/chat/messages",
                            headers={"User-ID": "w"},
                            json={"room_id": "bye", "message": f"n{i}"},
                        )
                    except Exception:
                        return
                    if r.status_code != 201:
                        return
                    acked.append(r.json()["message"]["seq"])
                    i += 1

            senders = [asyncio.create_task(keep_sending()) for _ in range(4)]
            await asyncio.sleep(0.5)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            await s.wait_for(lambda st: st.closed, timeout=5)
            await asyncio.gather(*senders)
            code = await asyncio.to_thread(server.proc.wait, 15)
            assert code == 0
            assert acked
    log = server.log()
    assert "Traceback" not in log, log
    restarted = Server(data_dir, auth="trust", port=server.port).start()
    try:
        async with client(restarted.url) as http:
            seqs: list[int] = []
            while True:
                page = (
                    await http.get(
                        "/chat/room/bye/history",
                        params={"user_id": "r", "limit": 200, "after": seqs[-1] if seqs else 0},
                    )
                ).json()
                if not page:
                    break
                seqs.extend(m["seq"] for m in page)
            assert seqs == list(range(1, len(seqs) + 1))
            assert set(acked) <= set(seqs)
    finally:
        restarted.stop()
