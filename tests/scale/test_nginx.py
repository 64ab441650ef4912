"""Through real nginx (deploy/nginx config) with two Hubbub upstreams sharing PostgreSQL and
Redis: streams survive, and when one upstream dies its clients resume on the other."""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_deploy_manifests import nginx_binary, nginx_prefix
from tests.scale.conftest import Cluster
from tests.support import client, free_port, open_stream


@pytest.fixture
def nginx_in_front(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[str, list[object]]]:
    nodes = cluster.start(2)
    binary = nginx_binary()
    port = free_port()
    prefix = nginx_prefix(
        tmp_path / "nginx", f"127.0.0.1:{port}", [f"127.0.0.1:{n.port}" for n in nodes]
    )
    proc = subprocess.Popen(
        [binary, *prefix.args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("nginx did not start:\n" + prefix.error_log.read_text())
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", list(nodes)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def test_streams_survive_and_resume_when_an_upstream_dies(
    nginx_in_front: tuple[str, list[object]],
) -> None:
    url, nodes = nginx_in_front
    room = "nginx-" + secrets.token_hex(4)
    async with client(url) as http:

        async def send(text: str) -> int:
            r = await http.post(
                "/chat/messages",
                headers={"User-ID": "sender"},
                json={"room_id": room, "message": text},
            )
            assert r.status_code == 201, r.text
            return int(r.json()["message"]["seq"])

        await send("hello")
        streams = []
        contexts = []
        for i in range(6):  # least_conn spreads them over both upstreams
            ctx = open_stream(
                http,
                f"/chat/room/{room}/events",
                headers={"User-ID": f"reader{i}", "Last-Event-ID": "1"},
            )
            contexts.append(ctx)
            streams.append(await ctx.__aenter__())
        try:
            for i in range(20):
                await send(f"before {i}")
            for s in streams:
                await s.wait_messages(20, timeout=15)

            victim = nodes[0]
            victim.kill()  # type: ignore[attr-defined]
            await asyncio.sleep(0.5)
            for i in range(20):
                await send(f"after {i}")
            last = 41
            dropped = [s for s in streams if s.closed]
            survivors = [s for s in streams if not s.closed]
            assert survivors, "every stream was on the killed upstream; least_conn should spread"
            assert dropped, "no stream was on the killed upstream; least_conn should spread"
            for s in survivors:
                msgs = await s.wait_messages(40, timeout=15)
                assert [m["seq"] for m in msgs] == list(range(2, last + 1))
                assert not s.closed
            for s in dropped:  # they reconnect through nginx and land on the survivor
                resumed_from = s.last_id()
                assert resumed_from is not None
                async with open_stream(
                    http,
                    f"/chat/room/{room}/events",
                    headers={"User-ID": "again", "Last-Event-ID": resumed_from},
                ) as again:
                    msgs = await again.wait_messages(last - int(resumed_from), timeout=15)
                    got = [m["seq"] for m in s.messages()] + [m["seq"] for m in msgs]
                    assert got == list(range(2, last + 1))
        finally:
            for ctx in contexts:
                await ctx.__aexit__(None, None, None)
