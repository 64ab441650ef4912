"""Redis goes away and comes back: sends keep working (the store is the source of truth), and
every subscriber on every node ends with every message exactly once, in order."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.scale.conftest import Cluster, history, http, post, seqs, streams
from tests.support import free_port


class PrivateRedis:
    """A redis-server of this test's own, on its own port (never the machine's 6379)."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--save", "", "--appendonly", "no"),
                *("--bind", "127.0.0.1", "--dir", str(self.workdir)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis(port=self.port, socket_connect_timeout=0.5).ping():
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(
            f"redis-server did not start: {(self.workdir / 'redis.log').read_text()}"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(free_port(), tmp_path / "redis")
    try:
        yield server.start()
    finally:
        server.stop()


LIMITER = {
    # Off: only the broker depends on Redis.
    "limiter_off": {"HUBBUB_RATE_LIMIT_PER_SECOND": "0"},
    # On, as in production (its counters live in the same Redis), with limits never reached.
    "limiter_on": {"HUBBUB_RATE_LIMIT_PER_SECOND": "1000", "HUBBUB_RATE_LIMIT_BURST": "10000"},
}


@pytest.mark.parametrize("limiter", sorted(LIMITER))
async def test_redis_restart_loses_nothing(
    cluster: Cluster, private_redis: PrivateRedis, limiter: str
) -> None:
    env = {"HUBBUB_BROKER": private_redis.url, "HUBBUB_RESYNC_INTERVAL": "1", **LIMITER[limiter]}
    a, b = cluster.start(2, env=env)
    room, tag = "redis-restart-" + secrets.token_hex(4), secrets.token_hex(3)
    outcomes: list[tuple[str, int | str, float]] = []  # (phase, status or error, seconds)
    acked: dict[int, str] = {}
    async with http(a.url) as on_a, http(b.url) as on_b, http(a.url) as sa, http(b.url) as sb:
        specs = [
            (client, f"/chat/room/{room}/events", {"params": {"user_id": f"r{i}-{tag}"}})
            for i, client in enumerate((on_a, on_a, on_b, on_b))
        ]
        async with streams(specs) as subs:
            counter = 0

            async def send_for(phase: str, seconds: float) -> None:
                nonlocal counter
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    client = (sa, sb)[counter % 2]  # alternate nodes
                    counter += 1
                    started = time.monotonic()
                    try:
                        r = await asyncio.wait_for(
                            post(client, f"w-{tag}", room, f"{phase} {counter}"), 10
                        )
                        status: int | str = r.status_code
                        if r.status_code == 201:
                            acked[r.json()["message"]["seq"]] = r.json()["message"]["id"]
                    except (TimeoutError, httpx.HTTPError) as exc:
                        status = f"{type(exc).__name__}"
                    outcomes.append((phase, status, time.monotonic() - started))
                    await asyncio.sleep(0.05)

            await send_for("before", 1.0)
            private_redis.stop()
            await send_for("down", 1.0)
            # Redis is part of readiness: a load balancer should see these nodes as degraded.
            not_ready = [(await c.get("/readyz")).status_code for c in (sa, sb)]
            await send_for("down", 1.0)
            restarted = time.monotonic()
            private_redis.start()
            ready: dict[str, float] = {}

            async def watch_ready() -> None:
                # Every node reports ready again by itself.
                while time.monotonic() - restarted < 20 and len(ready) < 2:
                    for node, client in ((a, sa), (b, sb)):
                        if node.url not in ready:
                            with contextlib.suppress(httpx.HTTPError):
                                if (await client.get("/readyz")).status_code == 200:
                                    ready[node.url] = round(time.monotonic() - restarted, 2)
                    await asyncio.sleep(0.1)

            watcher = asyncio.create_task(watch_ready())
            await send_for("after", 2.0)
            await watcher

            stored = await history(sa, room)
            assert seqs(stored) == list(range(1, len(stored) + 1))  # no gap in the store
            stored_ids = [m["id"] for m in stored]
            # Every subscriber gets what the store has, exactly once, in order (the resync
            # runs every second).
            for sub in subs:
                await sub.wait_messages(len(stored), timeout=20)
            await asyncio.sleep(1.5)  # a resync or two more: nothing may come twice
            for i, sub in enumerate(subs):
                got = sub.messages()
                assert [m["id"] for m in got] == stored_ids, (i, seqs(got))
                assert not sub.closed

    assert acked and set(acked.values()) <= set(stored_ids)
    assert {m["seq"]: m["id"] for m in stored if m["seq"] in acked} == acked
    print(f"\n[scale] /readyz while Redis was down: {not_ready}; 200 again after {ready} s")
    assert not_ready == [503, 503]
    assert sorted(ready) == sorted([a.url, b.url]), f"not ready again: {ready}"

    by_phase: dict[str, list[tuple[int | str, float]]] = {}
    for phase, status, took in outcomes:
        by_phase.setdefault(phase, []).append((status, took))
    summary = {
        phase: {
            "sent": len(items),
            "statuses": sorted({str(s) for s, _ in items}),
            "slowest_s": round(max(t for _, t in items), 2),
        }
        for phase, items in by_phase.items()
    }
    print(f"[scale] sends around the Redis restart: {summary}")
    assert len(by_phase["down"]) >= 5, summary
    failed = [(p, s) for p, s, _ in outcomes if s != 201]
    assert not failed, f"sends must succeed while Redis is away: {failed[:10]} …; {summary}"


async def test_send_that_ends_a_typing_indicator_while_redis_is_down(
    cluster: Cluster, private_redis: PrivateRedis
) -> None:
    """Sending ends the sender's typing indicator (shared in Redis). With Redis away, the
    message is stored all the same, so the answer must be 201 — never a 5xx for a stored
    message (a client would retry it)."""
    (node,) = cluster.start(1, env={"HUBBUB_BROKER": private_redis.url})
    room, user = "typing-down-" + secrets.token_hex(4), "t-" + secrets.token_hex(3)
    async with http(node.url) as client:
        assert (await post(client, user, room, "hello")).status_code == 201
        r = await client.post(
            f"/chat/room/{room}/typing", headers={"User-ID": user}, json={"is_typing": True}
        )
        assert r.status_code == 200, r.text
        private_redis.stop()
        r = await post(client, user, room, "sent while typing, Redis away")
        stored = [m["text"] for m in await history(client, room)]
        assert stored.count("sent while typing, Redis away") == 1, stored
        assert r.status_code == 201, (r.status_code, r.text[:300])


async def test_first_message_after_a_redis_restart_is_delivered_promptly(
    cluster: Cluster, private_redis: PrivateRedis
) -> None:
    """With the default resync interval (10 s): a few seconds after Redis is back, a message
    sent through one node reaches the other node's subscribers at once — the broker must not
    lose it on a connection that died with the old Redis, leaving it to the periodic resync.
    (Nothing polls /readyz here: a readiness probe's PING would heal that connection first.)"""
    a, b = cluster.start(2, env={"HUBBUB_BROKER": private_redis.url})
    room, tag = "after-restart-" + secrets.token_hex(4), secrets.token_hex(3)
    async with http(a.url) as on_a, http(b.url) as on_b:
        async with streams(
            [(on_b, f"/chat/room/{room}/events", {"params": {"user_id": f"r-{tag}"}})]
        ) as (sub,):
            assert (await post(on_a, f"w-{tag}", room, "before")).status_code == 201
            await sub.wait_messages(1, timeout=5)
            private_redis.stop()
            await asyncio.sleep(0.5)
            private_redis.start()
            await asyncio.sleep(3.0)  # pub/sub has reconnected (back-off) and repaired
            sent = time.monotonic()
            assert (await post(on_a, f"w-{tag}", room, "after")).status_code == 201
            await sub.wait_messages(2, timeout=15)
            took = time.monotonic() - sent
            print(f"\n[scale] first message after the Redis restart arrived in {took:.2f} s")
            assert took < 1.0, f"took {took:.1f} s (the broker lost it; only the resync found it)"
