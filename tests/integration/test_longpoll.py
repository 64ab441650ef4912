"""``GET /chat/room/{room}/poll?after=&timeout=``: the long-poll fallback.

It answers at once when there is something after ``after``, else waits — parked on the hub, with
no timer per client and no database query — until a message arrives (then within milliseconds)
or ``timeout`` passes (``[]``). Run with ``-s`` to see the measured figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from tests.integration.test_conformance import uniq
from tests.support import Server, assert_error, client

TICK = os.sysconf("SC_CLK_TCK")


async def post(http: httpx.AsyncClient, user: str, room: str, text: str) -> dict[str, Any]:
    r = await http.post(
        "/chat/messages", headers={"User-ID": user}, json={"room_id": room, "message": text}
    )
    assert r.status_code == 201, r.text
    return dict(r.json()["message"])


async def poll(http: httpx.AsyncClient, user: str, room: str, **params: Any) -> httpx.Response:
    return await http.get(f"/chat/room/{room}/poll", params={"user_id": user, **params})


async def longpoll_gauge(http: httpx.AsyncClient) -> float:
    text = (await http.get("/metrics")).text
    found = re.search(r'^hubbub_connections\{transport="longpoll"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def until_waiting(http: httpx.AsyncClient, n: int, timeout: float = 15) -> None:
    """Until ``n`` polls are parked on the server."""
    deadline = time.monotonic() + timeout
    while (have := await longpoll_gauge(http)) < n:
        assert time.monotonic() < deadline, f"only {have}/{n} polls waiting"
        await asyncio.sleep(0.02)


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process and its children (should there be worker processes)."""
    total = 0.0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        pids += [int(c) for c in children]
    for p in pids:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of stat(5)
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def test_an_empty_poll_answers_empty_after_its_timeout(trust_server: Server) -> None:
    room, user = uniq("lp"), uniq("u")
    async with client(trust_server.url) as http:
        await post(http, uniq("w"), room, "already there")
        for params in ({"timeout": 1}, {"timeout": 1, "after": 1}):
            started = time.monotonic()
            r = await poll(http, user, room, **params)
            took = time.monotonic() - started
            assert r.status_code == 200, r.text
            assert r.json() == []
            assert 0.9 <= took < 2.0, (params, took)
        started = time.monotonic()
        r = await poll(http, user, room, timeout=0, after=1)
        assert r.json() == [] and time.monotonic() - started < 0.5


async def test_a_poll_answers_at_once_when_there_is_something(trust_server: Server) -> None:
    room, user = uniq("lp"), uniq("u")
    async with client(trust_server.url) as http:
        sent = [await post(http, uniq("w"), room, f"m{i}") for i in range(4)]
        for params, want in (
            ({"after": 0}, sent),
            ({"after": 1}, sent[1:]),
            ({"after": 3}, sent[3:]),
            ({"after": 1, "limit": 2}, sent[1:3]),
        ):
            started = time.monotonic()
            r = await poll(http, user, room, timeout=30, **params)
            took = time.monotonic() - started
            assert r.status_code == 200, r.text
            assert r.json() == want, params  # the stored JSON, as the POST returned it
            assert took < 0.5, (params, took)


async def test_a_waiting_poll_wakes_within_100_ms_of_a_post(trust_server: Server) -> None:
    room, user = uniq("wake"), uniq("u")
    latencies: list[float] = []  # from the POST's response to the poll's
    since_request: list[float] = []  # from the POST's request to the poll's response
    async with client(trust_server.url) as http:
        await poll(http, user, room, timeout=0)  # trust mode: creates and joins the room
        head = 0
        for i in range(15):
            before = await longpoll_gauge(http)
            answered: list[float] = []

            async def wait(after: int = head, out: list[float] = answered) -> httpx.Response:
                r = await poll(http, user, room, after=after, timeout=10)
                out.append(time.perf_counter())
                return r

            waiting = asyncio.create_task(wait())
            await until_waiting(http, before + 1)
            await asyncio.sleep(0.05)
            sending = time.perf_counter()
            msg = await post(http, uniq("w"), room, f"wake {i}")
            posted = time.perf_counter()
            r = await asyncio.wait_for(waiting, 5)
            assert r.status_code == 200 and r.json() == [msg]
            latencies.append(max(0.0, answered[0] - posted))
            since_request.append(answered[0] - sending)
            head = msg["seq"]
    p50, p99 = statistics.median(latencies), max(latencies)
    print(
        f"long-poll wake-up ({len(latencies)} tries), from the POST's response: "
        f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms; from the POST's request: "
        f"p50 {statistics.median(since_request) * 1000:.1f} ms, "
        f"p99 {max(since_request) * 1000:.1f} ms"
    )
    assert p50 < 0.1, latencies


async def test_bad_parameters_are_422(trust_server: Server) -> None:
    room, user = uniq("bad"), uniq("u")
    async with client(trust_server.url) as http:
        for params in (
            {"timeout": 61},
            {"timeout": "abc"},
            {"timeout": -1},
            {"timeout": "nan"},
            {"after": -1},
            {"after": "1.5"},
            {"after": "x"},
        ):
            started = time.monotonic()
            r = await poll(http, user, room, **params)
            assert_error(r, 422, "invalid_field")
            assert time.monotonic() - started < 1, params  # refused at once, not after a wait
        # The bounds themselves are fine (and a message is there, so nothing waits).
        msg = await post(http, uniq("w"), room, "here")
        r = await poll(http, user, room, timeout=60, after=0)
        assert r.status_code == 200 and r.json() == [msg]


async def raw_poll(port: int, path: str, answered: list[float]) -> tuple[int, Any]:
    """One poll over its own plain socket: (status, JSON body). (httpx's connection pool needs
    seconds to hand 500 simultaneous answers over; a socket each measures the server.)"""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = re.search(rb"(?im)^content-length: *(\d+)", head)
        assert length is not None, head
        body = await reader.readexactly(int(length.group(1)))
        answered.append(time.perf_counter())
        return status, json.loads(body)
    finally:
        writer.close()


async def test_500_waiting_polls_cost_no_cpu_and_all_wake(tmp_path: Path) -> None:
    server = Server(tmp_path, auth="trust", env={"HUBBUB_RATE_LIMIT_PER_SECOND": "0"}).start()
    assert server.proc is not None
    room, users, n = uniq("many"), [uniq(f"p{i}") for i in range(20)], 500
    try:
        async with client(server.url) as http:
            for user in users:  # join first (trust mode joins on first use)
                assert (await poll(http, user, room, timeout=0)).status_code == 200
            answered: list[float] = []
            polls = [
                asyncio.create_task(
                    raw_poll(
                        server.port,
                        f"/chat/room/{room}/poll?user_id={users[i % 20]}&after=0&timeout=10",
                        answered,
                    )
                )
                for i in range(n)
            ]
            await until_waiting(http, n)
            await asyncio.sleep(0.2)  # let the last connections settle

            cpu_before, wall_before = cpu_seconds(server.proc.pid), time.monotonic()
            await asyncio.sleep(3)
            cpu = cpu_seconds(server.proc.pid) - cpu_before
            wall = time.monotonic() - wall_before
            assert not any(p.done() for p in polls)

            msg = await post(http, uniq("w"), room, "wake up, all of you")
            posted = time.perf_counter()
            results = await asyncio.wait_for(asyncio.gather(*polls), 15)
            lat = [max(0.0, t - posted) for t in answered]
    finally:
        server.stop()
    print(
        f"{n} waiting polls: server CPU {cpu:.3f} s over {wall:.2f} s; one POST woke them all: "
        f"p50 {percentile(lat, 0.5) * 1000:.1f} ms, p99 {percentile(lat, 0.99) * 1000:.1f} ms, "
        f"last {max(lat) * 1000:.1f} ms"
    )
    assert cpu < 0.3, f"{cpu:.3f} CPU-seconds while {n} polls waited"
    assert results == [(200, [msg])] * n
    assert max(lat) < 1.0, f"the last of {n} polls answered {max(lat):.2f} s after the POST"
