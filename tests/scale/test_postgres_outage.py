"""PostgreSQL goes away under one node (a TCP proxy we switch off): sends answer 503 quickly
with the error shape — never a hang, never a false 201 — and everything heals when it is back."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time

import httpx

from tests.scale.conftest import Cluster, TcpProxy, history, http, post, through
from tests.support import assert_error


async def test_postgres_outage_503_quickly_then_heals(
    cluster: Cluster, pg_database: str, pg_proxy: TcpProxy
) -> None:
    (node,) = cluster.start(1, env={"HUBBUB_DATABASE": through(pg_database, pg_proxy)})
    room, tag = "pg-outage-" + secrets.token_hex(4), secrets.token_hex(3)
    user = f"w-{tag}"
    created: list[str] = []
    refused: list[str] = []
    async with http(node.url) as client:

        async def send(text: str, within: float) -> httpx.Response:
            started = time.monotonic()
            try:
                r = await asyncio.wait_for(post(client, user, room, text), within)
            except TimeoutError:
                raise AssertionError(f"send {text!r} hung for more than {within} s") from None
            if r.status_code == 201:
                created.append(text)
            elif r.status_code == 503:
                refused.append(text)
            print(f"[scale] {text}: {r.status_code} in {time.monotonic() - started:.2f} s")
            return r

        for i in range(5):
            assert (await send(f"before {i}", 5)).status_code == 201
        assert (await client.get("/readyz")).status_code == 200

        pg_proxy.down()
        for i in range(4):
            r = await send(f"down {i}", 5)
            error = assert_error(r, 503)
            assert error["code"] == "store_unavailable", error
        # A few at once (one group commit) fail together, as quickly.
        many = await asyncio.gather(*[send(f"down burst {i}", 5) for i in range(5)])
        for r in many:
            assert_error(r, 503)
        started = time.monotonic()
        ready = await asyncio.wait_for(client.get("/readyz"), 5)
        assert_error(ready, 503)
        print(f"[scale] /readyz with PostgreSQL down: 503 in {time.monotonic() - started:.2f} s")

        pg_proxy.up()
        started = time.monotonic()
        while (await client.get("/readyz")).status_code != 200:
            assert time.monotonic() - started < 15, "/readyz did not come back"
            await asyncio.sleep(0.2)
        print(f"[scale] /readyz 200 again {time.monotonic() - started:.2f} s after PostgreSQL")
        for i in range(5):
            assert (await send(f"after {i}", 5)).status_code == 201

        stored = {m["text"] for m in await history(client, room)}
        assert set(created) <= stored, set(created) - stored
        assert not set(refused) & stored, set(refused) & stored
        assert len(refused) == 9
        assert len(created) == 10


async def test_postgres_partition_send_answers_503_within_seconds(
    cluster: Cluster, pg_database: str, pg_proxy: TcpProxy
) -> None:
    """The database host stops answering (no RST, no FIN): a send must not hang either."""
    (node,) = cluster.start(1, env={"HUBBUB_DATABASE": through(pg_database, pg_proxy)})
    room, user = "pg-partition-" + secrets.token_hex(4), "w-" + secrets.token_hex(3)
    async with http(node.url) as client:
        assert (await post(client, user, room, "before")).status_code == 201
        pg_proxy.silent()
        started = time.monotonic()
        try:
            r = await asyncio.wait_for(post(client, user, room, "during"), 6)
        except TimeoutError:
            r = None
        took = time.monotonic() - started
        ready = None
        with contextlib.suppress(TimeoutError):
            ready = (await asyncio.wait_for(client.get("/readyz"), 6)).status_code
        print(
            f"[scale] partition: send -> {r and r.status_code} after {took:.1f} s; readyz {ready}"
        )
        pg_proxy.silent(False)
        assert r is not None, "a send hung for 6 s while PostgreSQL did not answer"
        assert_error(r, 503)
        assert ready == 503
