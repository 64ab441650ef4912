"""What nodes share besides messages: presence (in Redis, with heartbeats, so a dead node's
users go offline) and the per-user send limit (a user cannot multiply it by switching nodes)."""

from __future__ import annotations

import asyncio
import secrets
import time

from tests.scale.conftest import Cluster, http, post
from tests.support import assert_error, open_stream


async def test_presence_is_shared_and_a_dead_nodes_users_go_offline(cluster: Cluster) -> None:
    a, b = cluster.start(2, env={"HUBBUB_PRESENCE_TTL": "2", "HUBBUB_PRESENCE_GRACE": "0.5"})
    tag = secrets.token_hex(3)
    room, alice, bob = f"presence-{tag}", f"alice-{tag}", f"bob-{tag}"
    path = f"/chat/room/{room}/events"
    async with http(a.url) as on_a, http(b.url) as on_b:
        async with open_stream(on_b, path, params={"user_id": bob}) as watch:
            async with open_stream(on_a, path, params={"user_id": alice}):
                r = await on_b.get(f"/chat/room/{room}/members", headers={"User-ID": bob})
                assert r.status_code == 200, r.text
                status = {m["user_id"]: m["presence"] for m in r.json()["members"]}
                assert status.get(alice) == "online", status
                assert status.get(bob) == "online", status

                def alice_said(s: object) -> list[str]:
                    return [
                        e.json()["status"]
                        for e in watch.named("presence")
                        if e.json()["user_id"] == alice
                    ]

                await watch.wait_for(lambda s: "online" in alice_said(s), timeout=5)
                killed = time.monotonic()
                a.kill()  # alice's connection dies with the node: no disconnect, no goodbye
                await watch.wait_for(lambda s: "offline" in alice_said(s), timeout=10)
                took = time.monotonic() - killed
            await asyncio.sleep(1.0)  # announced once, by one node
            assert alice_said(watch) == ["online", "offline"], alice_said(watch)
            assert not watch.closed
            print(f"\n[scale] offline seen on the other node {took:.1f} s after kill -9 (ttl 2 s)")
            r = await on_b.get(f"/chat/room/{room}/members", headers={"User-ID": bob})
            status = {m["user_id"]: m["presence"] for m in r.json()["members"]}
            assert status.get(alice) == "offline", status
            assert status.get(bob) == "online", status


async def test_rate_limit_is_shared_across_nodes(cluster: Cluster) -> None:
    a, b = cluster.start(
        2, env={"HUBBUB_RATE_LIMIT_BURST": "5", "HUBBUB_RATE_LIMIT_PER_SECOND": "0.5"}
    )
    tag = secrets.token_hex(3)
    room, user = f"limits-{tag}", f"chatty-{tag}"
    async with http(a.url) as on_a, http(b.url) as on_b:
        nodes = [on_a, on_b]
        for i in range(5):
            r = await post(nodes[i % 2], user, room, f"m{i}")
            assert r.status_code == 201, (i, r.status_code, r.text)
        for i in range(5, 7):
            r = await post(nodes[i % 2], user, room, f"m{i}")
            error = assert_error(r, 429, "rate_limited")
            assert int(r.headers["retry-after"]) >= 1, r.headers
            assert error["details"]["retry_after"] >= 1, error
        # Another user is not affected.
        r = await post(on_b, f"quiet-{tag}", room, "hello")
        assert r.status_code == 201, r.text
