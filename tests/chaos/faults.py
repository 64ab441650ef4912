"""The fault schedule and how each fault is done and undone.

The schedule is drawn in full, up front, from ``random.Random(seed)`` alone: the same seed gives
the same faults, targets and timings whatever the machine's speed, so a failing seed replays.
Faults run one after another; each is healed before the next starts, and ``heal_all`` undoes
whatever an interrupted run left behind.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass

from tests.chaos.clients import Follower
from tests.chaos.deploy import Deployment
from tests.chaos.record import Journal, Outage
from tests.chaos.workload import Sender

CLUSTER_KINDS = {
    "node_kill": 12,
    "redis_restart": 7,
    "pg_restart": 6,
    "pg_pause": 7,
    "partition_pg": 8,
    "partition_redis": 8,
    "drop_conn": 32,
    "stall_reader": 20,
}
SQLITE_KINDS = {"node_kill": 20, "drop_conn": 50, "stall_reader": 30}
LOCAL_ONLY = {"drop_conn", "stall_reader", "node_kill"}


@dataclass(frozen=True)
class Fault:
    kind: str
    target: int  # an index, reduced modulo whatever the kind targets
    hold: float  # seconds the fault lasts
    gap: float  # seconds of calm after it is healed

    def __str__(self) -> str:
        return f"{self.kind}[{self.target}] {self.hold:.2f}s"


def schedule(
    seed: int, deployment: str, count: int, duration: float, partitions: bool
) -> list[Fault]:
    kinds = dict(CLUSTER_KINDS if deployment == "cluster" else SQLITE_KINDS)
    if not partitions:
        kinds = {k: w for k, w in kinds.items() if not k.startswith("partition")}
    rng = random.Random(f"hubbub-chaos/{seed}/{deployment}")
    slot = duration / max(count, 1)
    out = []
    for _ in range(count):
        kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
        share = rng.uniform(0.4, 0.8)
        hold = 0.0 if kind == "drop_conn" else max(0.3, slot * share)
        if kind == "stall_reader":
            hold = max(hold, 1.5)
        out.append(Fault(kind, rng.randrange(1 << 16), hold, max(0.05, slot - hold)))
    return out


class Injector:
    def __init__(
        self,
        deployment: Deployment,
        followers: list[Follower],
        burster: Sender,
        journal: Journal,
    ) -> None:
        self.d = deployment
        self.followers = followers
        self.burster = burster
        self.journal = journal
        self.done: Counter[str] = Counter()
        self.stalls_cut = 0
        self._open: list[Outage] = []

    async def inject(self, fault: Fault) -> None:
        await getattr(self, fault.kind)(fault)
        self.done[fault.kind] += 1

    async def node_kill(self, f: Fault) -> None:
        node = self.d.nodes[f.target % len(self.d.nodes)]
        node.kill()
        await asyncio.sleep(f.hold)
        await self._restart(node.index)

    async def _restart(self, index: int) -> None:
        node = self.d.nodes[index]
        for attempt in range(3):
            try:
                await asyncio.to_thread(node.start)
                return
            except RuntimeError:
                node.kill()
                if attempt == 2:
                    raise
                await asyncio.sleep(1)

    async def redis_restart(self, f: Fault) -> None:
        assert self.d.redis is not None
        self.d.redis.kill()
        await asyncio.sleep(f.hold)
        await asyncio.to_thread(self.d.redis.start)

    async def pg_restart(self, f: Fault) -> None:
        assert self.d.postgres is not None
        outage = self._begin(None)
        await asyncio.to_thread(self.d.postgres.crash)
        await asyncio.sleep(f.hold)
        await asyncio.to_thread(self.d.postgres.start)
        self._end(outage)

    async def pg_pause(self, f: Fault) -> None:
        assert self.d.postgres is not None
        outage = self._begin(None)
        self.d.postgres.pause()
        await asyncio.sleep(f.hold)
        self.d.postgres.resume()
        self._end(outage)

    async def partition_pg(self, f: Fault) -> None:
        assert self.d.network is not None
        node = f.target % len(self.d.nodes)
        outage = self._begin(node)
        self.d.network.cut(node, self.d.network.pg_addr)
        await asyncio.sleep(f.hold)
        self.d.network.heal(node, self.d.network.pg_addr)
        self._end(outage)

    async def partition_redis(self, f: Fault) -> None:
        assert self.d.network is not None
        node = f.target % len(self.d.nodes)
        self.d.network.cut(node, self.d.network.redis_addr)
        await asyncio.sleep(f.hold)
        self.d.network.heal(node, self.d.network.redis_addr)

    async def drop_conn(self, f: Fault) -> None:
        self.followers[f.target % len(self.followers)].drop()

    async def stall_reader(self, f: Fault) -> None:
        """Stop reading and push big messages at it until the server's bound must cut it."""
        stallable = [x for x in self.followers if x.kind != "poll"]
        victim = stallable[f.target % len(stallable)]
        before = victim.counts.reconnects
        connected = victim.connected_at
        victim.stall()
        try:
            started = time.monotonic()
            await self.burster.burst(victim.rooms[0], 40)
            await asyncio.sleep(max(0.0, f.hold - (time.monotonic() - started)))
        finally:
            victim.unstall()
        for _ in range(20):  # did the server cut it? it reads what was buffered, then EOF
            if victim.counts.reconnects > before or victim.connected_at != connected:
                self.stalls_cut += 1
                break
            await asyncio.sleep(0.1)

    def _begin(self, node: int | None) -> Outage:
        outage = self.journal.outage_begins(node)
        self._open.append(outage)
        return outage

    def _end(self, outage: Outage) -> None:
        outage.end = time.monotonic()
        self._open.remove(outage)

    async def heal_all(self) -> None:
        """Whatever was in effect when the run stopped: undo it and bring every node back."""
        if self.d.postgres is not None:
            self.d.postgres.resume()
            if not self.d.postgres.pids():
                await asyncio.to_thread(self.d.postgres.start)
        if self.d.network is not None:
            for i in range(len(self.d.nodes)):
                self.d.network.heal(i, self.d.network.pg_addr)
                self.d.network.heal(i, self.d.network.redis_addr)
        if self.d.redis is not None and (self.d.redis.proc is None or not self.d.redis.alive):
            await asyncio.to_thread(self.d.redis.start)
        for node in self.d.nodes:
            if not node.alive:
                await self._restart(node.index)
        for outage in list(self._open):
            self._end(outage)
        for follower in self.followers:
            follower.unstall()
