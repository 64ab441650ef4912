"""A subscriber that stops reading is cut off without hurting anyone, then resumes intact."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path

from tests.support import Server, client, dechunk, open_stream

MESSAGE_CHARS = 3990
MESSAGE_BYTES = MESSAGE_CHARS * 3  # "€" is 3 bytes of UTF-8: fewer, fatter messages
TOTAL_BYTES = 20 * 1024 * 1024


async def test_slow_client_is_cut_off_and_others_keep_up(data_dir: Path) -> None:
    server = Server(
        data_dir,
        auth="trust",
        env={"HUBBUB_RATE_LIMIT_PER_SECOND": "0", "HUBBUB_STREAM_BUFFER_BYTES": "262144"},
    ).start()
    room = "firehose"
    try:
        # The slow reader: a raw socket with a tiny receive buffer that is never read.
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", server.port))
        slow.sendall(
            f"GET /chat/room/{room}/events?user_id=slow HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        async with client(server.url) as http:
            async with (
                open_stream(http, f"/chat/room/{room}/events", params={"user_id": "f1"}) as f1,
                open_stream(http, f"/chat/room/{room}/events", params={"user_id": "f2"}) as f2,
            ):
                await asyncio.sleep(0.3)
                rss_before = server.rss_kib()
                count = TOTAL_BYTES // MESSAGE_BYTES + 1
                body = "€" * (MESSAGE_CHARS - 10)

                async def sender(worker: int) -> None:
                    for i in range(worker, count, 8):
                        r = await http.post(
                            "/chat/messages",
                            headers={"User-ID": f"w{worker}"},
                            json={
                                "room_id": room,
                                "message": f"{i:08d} {body}",
                                "timestamp": time.time(),
                            },
                        )
                        assert r.status_code == 201

                latencies: list[float] = []

                async def measure() -> None:
                    seen = received = 0
                    while received < count:
                        await f1.wait_for(lambda s, n=seen: len(s.events) > n, timeout=30)
                        now = time.time()
                        new = [e for e in f1.events[seen:] if e.event == "message"]
                        latencies.extend(now - e.json()["timestamp"] for e in new)
                        received += len(new)
                        seen = len(f1.events)

                measurer = asyncio.create_task(measure())
                await asyncio.gather(*[sender(w) for w in range(8)])
                await asyncio.wait_for(measurer, 60)
                for s in (f1, f2):
                    msgs = await s.wait_messages(count, timeout=30)
                    assert [m["seq"] for m in msgs] == list(range(1, count + 1))
                latencies.sort()
                p99 = latencies[int(len(latencies) * 0.99) - 1]
                assert p99 < 1.0, f"p99 delivery latency {p99:.3f}s"
                rss_after = server.rss_kib()
                # 20 MB went to the slow reader's room; the server must not have buffered it.
                assert rss_after - rss_before < 64 * 1024, (rss_before, rss_after)

                metrics = (await http.get("/metrics")).text
                cutoffs = re.search(r"^hubbub_slow_client_cutoffs_total (\S+)$", metrics, re.M)
                assert cutoffs is not None
                assert float(cutoffs.group(1)) >= 1

                # The slow reader was cut off: draining its socket ends in EOF/reset well
                # before 20 MB.
                slow.settimeout(5)
                received = bytearray()
                try:
                    while chunk := slow.recv(65536):
                        received += chunk
                except (ConnectionResetError, TimeoutError):
                    pass
                assert len(received) < TOTAL_BYTES // 2
                frames = dechunk(bytes(received)).decode(errors="replace")
                complete = frames[: frames.rfind("\n\n") + 2]
                ids = [int(x) for x in re.findall(r"^id: (\d+)\ndata: ", complete, re.M)]
                last = ids[-1] if ids else 0
                assert ids == list(range(1, last + 1))

                # It resumes and gets everything it missed, once, in order.
                async with open_stream(
                    http,
                    f"/chat/room/{room}/events",
                    params={"user_id": "slow"},
                    headers={"Last-Event-ID": str(last)},
                ) as again:
                    msgs = await again.wait_messages(count - last, timeout=60)
                    assert [m["seq"] for m in msgs] == list(range(last + 1, count + 1))
        slow.close()
    finally:
        server.stop()
