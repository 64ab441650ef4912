"""``kill -9`` one node mid-stream: its clients resume on another node with ``Last-Event-ID``
and get exactly what they missed; the other nodes' clients never notice."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.scale.conftest import Cluster, http, post, seqs
from tests.support import SSEStream, open_stream


@dataclass
class Reader:
    name: str
    streams: list[list[dict[str, Any]]] = field(default_factory=list)  # messages per stream
    resumed_from: str | None = None
    closed_early: bool = False
    current: SSEStream | None = None
    earlier: int = 0  # messages received on streams that have ended

    def all_seqs(self) -> list[int]:
        return [s for msgs in self.streams for s in seqs(msgs)]

    def received(self) -> int:
        return self.earlier + (len(self.current.messages()) if self.current else 0)


async def test_kill_9_a_node_mid_stream_its_clients_resume_elsewhere(cluster: Cluster) -> None:
    a, b, c = cluster.start(3)
    room, tag = "failover-" + secrets.token_hex(4), secrets.token_hex(3)
    total, kill_after = 150, 50
    path = f"/chat/room/{room}/events"
    connected = asyncio.Semaphore(0)
    finished = asyncio.Event()

    async def survivor(client: httpx.AsyncClient, reader: Reader) -> None:
        async with open_stream(client, path, params={"user_id": reader.name}) as s:
            reader.current = s
            connected.release()
            await finished.wait()
            reader.streams.append(s.messages())
            reader.closed_early = s.closed

    async def on_victim(
        victim: httpx.AsyncClient, fallback: httpx.AsyncClient, reader: Reader
    ) -> None:
        async with open_stream(victim, path, params={"user_id": reader.name}) as s:
            reader.current = s
            connected.release()
            await s.wait_for(lambda st: st.closed, timeout=60)  # the node dies
            reader.streams.append(s.messages())
            reader.earlier, reader.current = len(s.messages()), None
            last = s.last_id()
        assert last is not None
        reader.resumed_from = last
        async with open_stream(
            fallback, path, headers={"Last-Event-ID": last}, params={"user_id": reader.name}
        ) as again:
            reader.current = again
            await finished.wait()
            reader.streams.append(again.messages())
            reader.closed_early = again.closed

    clients = [http(n.url) for n in (a, b, c, b)]
    on_a, on_b, on_c, fallback = clients
    survivors = [Reader(f"sa{i}-{tag}") for i in range(2)] + [
        Reader(f"sb{i}-{tag}") for i in range(2)
    ]
    victims = [Reader(f"sc{i}-{tag}") for i in range(2)]
    try:
        tasks = [
            asyncio.create_task(survivor(on_a if i < 2 else on_b, r))
            for i, r in enumerate(survivors)
        ] + [asyncio.create_task(on_victim(on_c, fallback, r)) for r in victims]
        for _ in range(len(tasks)):
            await asyncio.wait_for(connected.acquire(), 15)

        acked: dict[int, str] = {}
        for i in range(total):
            if i == kill_after:
                c.kill()  # SIGKILL: no goodbye to its clients, no drain
            r = await post(on_a, f"writer-{tag}", room, f"m{i}")
            assert r.status_code == 201, r.text
            acked[r.json()["message"]["seq"]] = r.json()["message"]["id"]
            await asyncio.sleep(0.01)
        assert sorted(acked) == list(range(1, total + 1))

        # Let every reader catch up (a little longer, for a duplicate to show), then stop.
        readers = survivors + victims
        for _ in range(200):
            if all(r.received() >= total for r in readers):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        finished.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        finished.set()
        for client in clients:
            await client.aclose()

    everything = list(range(1, total + 1))
    for r in survivors:
        assert len(r.streams) == 1
        assert r.all_seqs() == everything, (r.name, r.all_seqs())
        assert not r.closed_early, f"{r.name}'s stream on a surviving node was closed"
        assert {m["seq"]: m["id"] for m in r.streams[0]} == acked
    for r in victims:
        before, after = r.streams
        assert r.resumed_from is not None
        assert 0 < len(before) < total, f"{r.name}: the kill was not mid-stream ({len(before)})"
        missed_from = int(r.resumed_from) + 1
        assert seqs(before) == list(range(1, missed_from)), (r.name, seqs(before))
        assert seqs(after) == list(range(missed_from, total + 1)), (r.name, seqs(after))
        assert {m["seq"]: m["id"] for m in before + after} == acked
        assert not r.closed_early
