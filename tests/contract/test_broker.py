"""The Broker contract (``hubbub.broker.base``), against memory and a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from hubbub.broker.base import Broker, open_broker
from hubbub.encoding import Event
from tests.contract.backends import each_backend, eventually, redis_only, unique_prefix, url_for
from tests.support import REDIS_URL


class Node:
    """One broker and what it received."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.got: list[Event] = []

    def rooms(self, room_id: str) -> list[Event]:
        return [e for e in self.got if e.room_id == room_id]


@asynccontextmanager
async def nodes(kind: str, count: int = 1, url: str | None = None) -> AsyncIterator[list[Node]]:
    """``count`` brokers on one channel prefix: with Redis, ``count`` nodes of one cluster."""
    url = url or url_for(kind)
    prefix = unique_prefix()
    started: list[Node] = []
    try:
        for _ in range(count):
            node = Node(open_broker(url, prefix))
            await node.broker.start(node.got.append)
            started.append(node)
        yield started
    finally:
        for node in started:
            await node.broker.close()


def event(room_id: str, n: int) -> Event:
    e = Event.named(room_id, "message", {"n": n, "text": 'héllo\u2028 "quoted" \\ \x00'})
    e.seq = n
    return e


@each_backend
async def test_events_of_a_room_arrive_in_publish_order_with_bytes_unchanged(kind: str) -> None:
    async with nodes(kind) as [node]:
        await node.broker.subscribe("r1")
        sent = [event("r1", n) for n in range(1, 201)]
        for e in sent:
            await node.broker.publish(e)
        await eventually(lambda: len(node.got) >= len(sent))
        assert [e.wire() for e in node.got] == [e.wire() for e in sent]
        assert [e.data for e in node.got] == [e.data for e in sent]


@each_backend
async def test_only_subscribed_rooms_are_delivered(kind: str) -> None:
    async with nodes(kind) as [node]:
        await node.broker.subscribe("a")
        await node.broker.subscribe("b")
        await node.broker.publish(event("elsewhere", 1))
        await node.broker.publish(event("a", 1))
        await node.broker.publish(event("b", 1))
        await eventually(lambda: len(node.rooms("b")) == 1)
        await node.broker.unsubscribe("a")
        await node.broker.unsubscribe("a")  # idempotent
        await node.broker.subscribe("b")  # idempotent: still one delivery per event
        await node.broker.publish(event("a", 2))
        await node.broker.publish(event("b", 2))
        await eventually(lambda: len(node.rooms("b")) == 2)
        # Events of one connection arrive in order, so "b" 2 coming means "a" 2 did not.
        assert [e.seq for e in node.rooms("a")] == [1]
        assert node.rooms("elsewhere") == []
        assert [e.seq for e in node.rooms("b")] == [1, 2]


@redis_only
async def test_another_node_receives_and_each_node_only_its_rooms(kind: str) -> None:
    async with nodes(kind, 3) as [a, b, c]:
        await a.broker.subscribe("r")
        await b.broker.subscribe("r")
        await c.broker.subscribe("other")
        for n in range(1, 51):
            await a.broker.publish(event("r", n))
        await c.broker.publish(event("other", 1))
        await eventually(lambda: len(a.got) == 50 and len(b.got) == 50 and len(c.got) == 1)
        assert [e.seq for e in b.got] == list(range(1, 51))
        assert [e.seq for e in a.got] == list(range(1, 51))
        assert [e.room_id for e in c.got] == ["other"]


@redis_only
async def test_prefixes_separate_deployments_sharing_one_redis(kind: str) -> None:
    async with nodes(kind) as [a], nodes(kind) as [b]:
        await a.broker.subscribe("r")
        await b.broker.subscribe("r")
        await a.broker.publish(event("r", 1))
        await eventually(lambda: len(a.got) == 1)
        await b.broker.publish(event("r", 2))
        await eventually(lambda: len(b.got) == 1)
        assert [e.seq for e in a.got] == [1]
        assert [e.seq for e in b.got] == [2]


@redis_only
async def test_reconnect_hook_runs_after_redis_drops_the_connection(kind: str) -> None:
    name = unique_prefix().replace(":", "-").rstrip("-")
    async with nodes(kind, 2, url=f"{REDIS_URL}?client_name={name}") as [node, other]:
        reconnects: list[int] = []

        async def hook() -> None:
            reconnects.append(len(node.got))

        node.broker.on_reconnect(hook)
        await node.broker.subscribe("r")
        await other.broker.publish(event("r", 1))
        await eventually(lambda: len(node.got) == 1)
        assert reconnects == []

        admin = aioredis.Redis.from_url(REDIS_URL)
        try:
            ours = [c for c in await admin.client_list(_type="pubsub") if c.get("name") == name]
            # Only the subscribed node has a pub/sub connection; kill it and nobody else's.
            assert len(ours) == 1
            await admin.client_kill_filter(_id=ours[0]["id"])
        finally:
            await admin.aclose()

        await eventually(lambda: reconnects == [1])
        # Subscriptions are restored before the hook runs: the next event arrives.
        await other.broker.publish(event("r", 2))
        await eventually(lambda: len(node.got) == 2)
        assert reconnects == [1]


async def test_memory_broker_accepts_a_reconnect_hook_and_never_calls_it() -> None:
    called: list[bool] = []

    async def hook() -> None:
        called.append(True)

    async with nodes("memory") as [node]:
        node.broker.on_reconnect(hook)
        await node.broker.subscribe("r")
        await node.broker.publish(event("r", 1))
        await node.broker.ping()
        await asyncio.sleep(0)
        assert [e.seq for e in node.got] == [1]
    assert called == []


@each_backend
async def test_ping_answers_while_the_backend_is_up(kind: str) -> None:
    async with nodes(kind) as [node]:
        await node.broker.ping()
