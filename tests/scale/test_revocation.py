"""Access follows changes across nodes (PostgreSQL + Redis): a user who leaves a room on one
node, or whose session ends there, stops receiving on every node within a second; and a
client that resumes on another node sees every change it missed."""

from __future__ import annotations

import asyncio
import secrets
import time

from tests.scale.conftest import Cluster, http, post
from tests.support import PASSWORD, Server, open_stream


async def test_leaving_on_one_node_ends_the_stream_on_another(cluster: Cluster) -> None:
    a, b = cluster.start(2)
    room, me = "rv" + secrets.token_hex(3), "leaver" + secrets.token_hex(3)
    async with http(a.url) as on_a, http(b.url) as on_b:
        assert (await post(on_a, me, room, "hi")).status_code == 201
        async with (
            open_stream(on_b, f"/chat/room/{room}/events", params={"user_id": me}) as room_stream,
            open_stream(on_b, "/chat/events", params={"user_id": me}) as all_stream,
        ):
            assert (await post(on_a, "other", room, "before")).status_code == 201
            await room_stream.wait_messages(1)
            await all_stream.wait_messages(1)
            left_at = time.monotonic()
            r = await on_a.post(f"/chat/room/{room}/leave", headers={"User-ID": me})
            assert r.json() == {"left": True}
            await room_stream.wait_for(lambda s: s.closed, 1.5)
            await all_stream.wait_for(lambda s: bool(s.named("room_removed")), 1.5)
            assert time.monotonic() - left_at < 1.5
            assert (await post(on_a, "other", room, "after")).status_code == 201
            await asyncio.sleep(0.5)
            assert [m["text"] for m in all_stream.messages()] == ["before"]


async def test_a_change_made_on_one_node_is_replayed_on_another(cluster: Cluster) -> None:
    a, b = cluster.start(2)
    room = "rc" + secrets.token_hex(3)
    async with http(a.url) as on_a, http(b.url) as on_b:
        msg = (await post(on_a, "ed", room, "draft")).json()["message"]
        async with open_stream(on_b, f"/chat/room/{room}/events", params={"user_id": "ed"}) as live:
            r = await on_a.patch(
                f"/chat/messages/{msg['id']}", headers={"User-ID": "ed"}, json={"message": "v1"}
            )
            assert r.status_code == 200
            await live.wait_for(lambda s: bool(s.named("message_edited")), 5)
            last = live.last_id()
        assert last is not None and last.startswith("r")
        r = await on_a.patch(
            f"/chat/messages/{msg['id']}", headers={"User-ID": "ed"}, json={"message": "final"}
        )
        assert r.status_code == 200
        async with open_stream(
            on_b,
            f"/chat/room/{room}/events",
            params={"user_id": "ed"},
            headers={"Last-Event-ID": last},
        ) as back:
            await back.wait_for(lambda s: bool(s.named("message_edited")), 5)
            await asyncio.sleep(0.3)
            assert [e.json()["text"] for e in back.named("message_edited")] == ["final"]


async def test_logout_on_one_node_ends_streams_on_another(cluster: Cluster) -> None:
    env = cluster.env()
    a = Server(cluster.base / "jwt-a", auth="jwt", env=env)
    b = Server(cluster.base / "jwt-b", auth="jwt", env=env)
    cluster.nodes += [a, b]
    a.start(timeout=30)
    b.start(timeout=30)
    name = "lo" + secrets.token_hex(4)
    async with http(a.url) as on_a, http(b.url) as on_b:
        r = await on_a.post("/auth/register", json={"username": name, "password": PASSWORD})
        assert r.status_code == 201, r.text
        tokens = (
            await on_a.post("/auth/login", json={"username": name, "password": PASSWORD})
        ).json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        async with open_stream(on_b, "/chat/events", headers=bearer) as stream:
            out_at = time.monotonic()
            r = await on_a.post(
                "/auth/logout", headers=bearer, json={"refresh_token": tokens["refresh_token"]}
            )
            assert r.status_code == 200, r.text
            await stream.wait_for(lambda s: s.closed, 1.5)
            assert time.monotonic() - out_at < 1.5
        # The other node's session cache forgot the session too: the old token is refused.
        r = await on_b.get("/chat/events", headers=bearer)
        assert r.status_code == 401
