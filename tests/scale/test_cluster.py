"""Several nodes sharing PostgreSQL and Redis: every subscriber on every node gets every
message exactly once, in ``seq`` order, whichever node it was sent through."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import subprocess
import sys
import threading
import time

import httpx

from tests.scale.conftest import (
    Arrivals,
    Cluster,
    TcpProxy,
    history,
    http,
    percentile,
    post,
    seqs,
    start_all,
    streams,
    through,
)
from tests.support import REDIS_URL, create_pg_database, drop_pg_database, open_stream

# The figures of the throughput workload, by label, for the comparison printed at the end.
FIGURES: dict[str, dict[str, float]] = {}


async def workload(
    subscriber_urls: list[str],
    sender_urls: list[str],
    room: str,
    *,
    per_sender: int = 60,
    in_flight: int = 4,
) -> dict[str, float]:
    """Subscribers (one connection each) on ``subscriber_urls``, one sender per entry of
    ``sender_urls`` with ``in_flight`` concurrent sends; check exactly-once, in-order delivery
    everywhere and a gap-free history; return throughput and latency figures."""
    total = per_sender * len(sender_urls)
    tag = secrets.token_hex(3)
    sent_at: dict[str, float] = {}
    acked: dict[int, str] = {}
    async with contextlib.AsyncExitStack() as stack:
        sub_clients = [await stack.enter_async_context(http(u)) for u in subscriber_urls]
        send_clients = [await stack.enter_async_context(http(u)) for u in sender_urls]
        subs = await stack.enter_async_context(
            streams(
                [
                    (c, f"/chat/room/{room}/events", {"params": {"user_id": f"reader{i}-{tag}"}})
                    for i, c in enumerate(sub_clients)
                ]
            )
        )
        arrivals = [Arrivals(s) for s in subs]

        async def sender(k: int, client: httpx.AsyncClient) -> None:
            todo = iter(range(per_sender))

            async def lane() -> None:
                for i in todo:
                    text = f"s{k}-{i}-{tag}"
                    sent_at[text] = time.perf_counter()
                    r = await post(client, f"writer{k}-{tag}", room, text)
                    assert r.status_code == 201, (r.status_code, r.text)
                    message = r.json()["message"]
                    assert message["seq"] not in acked, message
                    acked[message["seq"]] = message["id"]

            await asyncio.gather(*[lane() for _ in range(in_flight)])

        started = time.perf_counter()
        await asyncio.gather(*[sender(k, c) for k, c in enumerate(send_clients)])
        elapsed = time.perf_counter() - started

        assert sorted(acked) == list(range(1, total + 1))
        for sub in subs:
            await sub.wait_messages(total, timeout=30)
        await asyncio.sleep(0.3)  # room for a duplicate to show up
        for i, sub in enumerate(subs):
            got = sub.messages()
            assert seqs(got) == list(range(1, total + 1)), (subscriber_urls[i], seqs(got))
            assert {m["seq"]: m["id"] for m in got} == acked
            assert not sub.closed
        stored = await history(send_clients[0], room)
        assert seqs(stored) == list(range(1, total + 1))
        assert {m["seq"]: m["id"] for m in stored} == acked
        assert {m["text"] for m in stored} == set(sent_at)

    latencies = [a.at[text] - t0 for a in arrivals for text, t0 in sent_at.items()]
    return {
        "messages": total,
        "subscribers": len(subscriber_urls),
        "accepted_per_s": total / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


def report(label: str, figures: dict[str, float]) -> None:
    FIGURES[label] = figures
    print(
        f"\n[scale] {label}: {figures['messages']:.0f} messages to "
        f"{figures['subscribers']:.0f} subscribers: {figures['accepted_per_s']:.0f} msg/s "
        f"accepted, delivery p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms"
    )
    if len(FIGURES) == 2:
        one, three = FIGURES.get("1 node"), FIGURES.get("3 nodes")
        if one and three:
            print(
                f"[scale] 3 nodes vs 1 node: {three['accepted_per_s']:.0f} vs "
                f"{one['accepted_per_s']:.0f} msg/s accepted; delivery p99 "
                f"{three['p99_ms']:.1f} vs {one['p99_ms']:.1f} ms"
            )


async def test_three_nodes_every_subscriber_gets_every_message_once_in_order(
    cluster: Cluster,
) -> None:
    nodes = cluster.start(3)
    urls = [n.url for n in nodes]
    figures = await workload(
        subscriber_urls=[u for u in urls for _ in range(2)],
        sender_urls=urls,
        room="cluster-" + secrets.token_hex(4),
    )
    report("3 nodes", figures)


async def test_same_workload_on_one_node_for_comparison(cluster: Cluster) -> None:
    (node,) = cluster.start(1)
    figures = await workload(
        subscriber_urls=[node.url] * 6,
        sender_urls=[node.url] * 3,
        room="single-" + secrets.token_hex(4),
    )
    report("1 node", figures)


async def test_all_rooms_stream_on_one_node_sees_messages_sent_through_others(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.start(3)
    tag = secrets.token_hex(3)
    me, rooms = f"me-{tag}", [f"all1-{tag}", f"all2-{tag}"]
    async with http(a.url) as on_a, http(b.url) as on_b, http(c.url) as on_c:
        for room in rooms:  # trust mode: sending joins (and creates) the room
            assert (await post(on_b, me, room, f"hello {room}")).status_code == 201
        async with open_stream(on_a, "/chat/events", headers={"User-ID": me}) as s:
            expected = []
            for i in range(10):
                for client, room in ((on_b, rooms[0]), (on_c, rooms[1])):
                    r = await post(client, f"other-{tag}", room, f"{room} {i}")
                    assert r.status_code == 201, r.text
                    expected.append(r.json()["message"]["id"])
            msgs = await s.wait_messages(20, timeout=15)
            await asyncio.sleep(0.3)
            msgs = s.messages()
            assert sorted(m["id"] for m in msgs) == sorted(expected)
            for room in rooms:
                assert seqs([m for m in msgs if m["room_id"] == room]) == list(range(2, 12))
            cursors = [e.id for e in s.events if e.event == "message"]
            assert len(set(cursors)) == 20
            assert not s.closed


def _metric(text: str, name: str) -> float | None:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


async def test_workers_2_on_one_port_with_redis(cluster: Cluster) -> None:
    server = cluster.node(args=["--workers", "2", "--broker", REDIS_URL])
    server.start(timeout=30)
    room, tag = "workers-" + secrets.token_hex(4), secrets.token_hex(3)
    per_sender, senders = 40, 4
    total = per_sender * senders
    acked: dict[int, str] = {}
    async with contextlib.AsyncExitStack() as stack:
        # A client per connection: each connection is accepted by whichever worker wins it.
        sub_clients = [await stack.enter_async_context(http(server.url)) for _ in range(8)]
        subs = await stack.enter_async_context(
            streams(
                [
                    (c, f"/chat/room/{room}/events", {"params": {"user_id": f"r{i}-{tag}"}})
                    for i, c in enumerate(sub_clients)
                ]
            )
        )

        async def sender(k: int) -> None:
            for i in range(per_sender):
                # A fresh connection per send: sends land on both workers.
                async with http(server.url) as client:
                    r = await post(client, f"w{k}-{tag}", room, f"{k}/{i}")
                assert r.status_code == 201, r.text
                acked[r.json()["message"]["seq"]] = r.json()["message"]["id"]

        await asyncio.gather(*[sender(k) for k in range(senders)])
        assert sorted(acked) == list(range(1, total + 1))
        for sub in subs:
            await sub.wait_messages(total, timeout=20)
        await asyncio.sleep(0.3)
        for sub in subs:
            assert {m["seq"]: m["id"] for m in sub.messages()} == acked
            assert seqs(sub.messages()) == list(range(1, total + 1))

        # Which worker stored what (each worker has its own /metrics): informative only.
        seen: set[float] = set()
        for _ in range(20):
            async with http(server.url) as client:
                value = _metric((await client.get("/metrics")).text, "hubbub_messages_total")
            if value is not None:
                seen.add(value)
        print(f"\n[scale] --workers 2: hubbub_messages_total per worker seen: {sorted(seen)}")
        async with http(server.url) as client:
            stored = await history(client, room)
        assert {m["seq"]: m["id"] for m in stored} == acked


def test_workers_2_with_the_memory_broker_is_refused(cluster: Cluster) -> None:
    node = cluster.node()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hubbub",
            "serve",
            "--workers",
            "2",
            "--auth",
            "trust",
            "--port",
            str(node.port),
            "--data-dir",
            str(node.data_dir),
        ],
        env={**os.environ, **node.env, "HUBBUB_BROKER": "memory://"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "broker" in output.lower(), output
    assert "redis://" in output, output
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(f"{node.url}/healthz", timeout=0.5)
        raise AssertionError("nothing should be listening")


def test_three_nodes_started_at_once_on_a_fresh_database(
    cluster: Cluster, pg_proxy: TcpProxy
) -> None:
    """Replicas rolled out together (or waiting together for the database to come up) reach a
    fresh database at the same moment: they must not trip over each other's migrations.

    The nodes connect through a proxy that holds their connections until all three are
    waiting, then lets them through at once."""
    url = create_pg_database()  # a sync test: this helper runs its own event loop
    try:
        nodes = [cluster.node(database=through(url, pg_proxy)) for _ in range(3)]
        pg_proxy.hold()
        failures: list[BaseException] = []

        def run() -> None:
            try:
                start_all(nodes)
            except BaseException as exc:
                failures.append(exc)

        starter = threading.Thread(target=run)
        starter.start()
        deadline = time.monotonic() + 30
        while pg_proxy.waiting < len(nodes) and time.monotonic() < deadline:
            time.sleep(0.05)
        pg_proxy.release()
        starter.join()
        assert not failures, f"a node did not start: {str(failures[0])[-1500:]}"
        r = httpx.post(
            nodes[0].url + "/chat/messages",
            headers={"User-ID": "u"},
            json={"room_id": "fresh", "message": "hello"},
        )
        assert r.status_code == 201, r.text
    finally:
        cluster.stop_all()
        drop_pg_database(url)
