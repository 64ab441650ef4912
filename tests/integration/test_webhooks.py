"""Webhooks (API.md "Webhooks"): a real receiver on a free port, real server processes.

Every stored room change reaches the receiver signed, with its type and data, at least once and
in order per room — through a failing receiver, a receiver that is not there yet, and a server
killed with deliveries pending; two nodes on one PostgreSQL database deliver each change once.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hubbub.store.sql import SqlStore
from hubbub.webhooks.leader import FileLeadership
from hubbub.webhooks.outbox import endpoint_key
from hubbub.webhooks.signing import verify
from hubbub.webhooks.worker import WebhookWorker
from tests.support import (
    Server,
    client,
    create_pg_database,
    drop_pg_database,
    free_port,
    say,
    user,
)

SECRET = "whsec-" + "k" * 24
FAST = {"HUBBUB_RATE_LIMIT_BURST": "10000", "HUBBUB_RATE_LIMIT_PER_SECOND": "10000"}


def uniq(prefix: str) -> str:
    return prefix + secrets.token_hex(4)


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)
    json: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.json = dict(json.loads(self.body))  # once: the receiver shares the test's loop


@dataclass
class Receiver:
    """A minimal HTTP/1.1 receiver (keep-alive, Content-Length bodies). ``status`` is what it
    answers; only 2xx-answered POSTs are recorded in ``hits``, the rest counted in ``refused``."""

    port: int = field(default_factory=free_port)
    status: int = 200
    hits: list[Hit] = field(default_factory=list)
    refused: int = 0
    _server: asyncio.Server | None = None
    _peers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for peer in list(self._peers):
                peer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._peers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    key, sep, value = line.partition(":")
                    if sep:
                        headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = self.status
                if 200 <= status < 300:
                    self.hits.append(Hit(headers, body))
                else:
                    self.refused += 1
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._peers.discard(writer)
            writer.close()

    def events(self) -> list[dict[str, Any]]:
        """Each change once (the receiver's dedupe by ``id``), in arrival order."""
        seen: set[str] = set()
        out = []
        for h in self.hits:
            e = h.json
            if e["id"] not in seen:
                seen.add(e["id"])
                out.append(e)
        return out

    def texts(self, room: str) -> list[str]:
        return [
            e["data"]["text"]
            for e in self.events()
            if e["type"] == "message" and e["room_id"] == room
        ]

    async def wait(self, check: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met; got {self.events()[-5:]}")
            await asyncio.sleep(0.05)


def hooked(data_dir: Path, receiver: Receiver, **kw: Any) -> Server:
    env = {**FAST, "HUBBUB_WEBHOOK_URL": receiver.url, "HUBBUB_WEBHOOK_SECRET": SECRET}
    env.update(kw.pop("env", {}))
    return Server(data_dir, auth="trust", env=env, **kw)


async def start(server: Server) -> Server:
    """Started off the event loop: the receiver must keep answering while the server starts."""
    return await asyncio.to_thread(server.start)


async def test_signed_payload_for_every_kind_of_change(data_dir: Path) -> None:
    receiver = await Receiver().start()
    server = await start(hooked(data_dir, receiver))
    room, actor, other = uniq("kinds-"), uniq("actor"), uniq("other")
    try:
        async with client(server.url) as http:
            m1 = await say(http, actor, room, "hello ✓ \u2028 <b>")
            m2 = await say(http, other, room, "second")
            r = await http.patch(
                f"/chat/messages/{m1['id']}", headers=user(actor), json={"message": "edited"}
            )
            assert r.status_code == 200, r.text
            path = f"/chat/messages/{m2['id']}/reactions"
            assert (
                await http.post(path, headers=user(actor), json={"reaction": "👍"})
            ).status_code in (200, 201)
            assert (await http.delete(f"{path}/👍", headers=user(actor))).status_code in (200, 204)
            r = await http.delete(f"/chat/messages/{m2['id']}", headers=user(other))
            assert r.status_code == 200, r.text
            r = await http.patch(f"/chat/room/{room}", headers=user(actor), json={"name": "Nu"})
            assert r.status_code == 200, r.text
            r = await http.post(
                f"/chat/room/{room}/typing", headers=user(actor), json={"is_typing": True}
            )
            assert r.status_code < 300
            assert (await http.post(f"/chat/room/{room}/leave", headers=user(other))).status_code
            r = await http.post(f"/chat/room/{room}/read", headers=user(actor), json={"seq": 1})
            await say(http, actor, room, "last")
            history = (await http.get(f"/chat/room/{room}/history", headers=user(actor))).json()

        await receiver.wait(lambda: "last" in receiver.texts(room))
        await asyncio.sleep(0.5)  # nothing else should follow
        events = receiver.events()
        assert {e["room_id"] for e in events} == {room}  # no personal (@user) changes, ever
        types = [e["type"] for e in events]
        assert types == [
            "member_joined",
            "message",
            "member_joined",
            "message",
            "message_edited",
            "reaction",
            "reaction",
            "message_deleted",
            "room_updated",
            "member_left",
            "message",
        ]  # and no typing, presence or read: those are never stored
        for e in events:
            assert set(e) == {"id", "type", "room_id", "data", "created_at"}
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["created_at"])
        ids = [int(e["id"]) for e in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        by_type = defaultdict(list)
        for e in events:
            by_type[e["type"]].append(e["data"])
        assert [d["action"] for d in by_type["reaction"]] == ["added", "removed"]
        assert (
            by_type["reaction"][0].items()
            >= {
                "message_id": m2["id"],
                "room_id": room,
                "user_id": actor,
                "reaction": "👍",
                "action": "added",
            }.items()
        )
        assert by_type["message_edited"][0]["text"] == "edited"
        assert by_type["message_deleted"][0]["id"] == m2["id"]
        assert by_type["room_updated"][0]["name"] == "Nu"
        assert by_type["member_left"][0]["user_id"] == other
        assert by_type["member_joined"][0]["user_id"] == actor
        # a message's data is the message as the API returns it (in its current state)
        assert by_type["message"][-1] == history[-1]
        assert by_type["message"][0]["id"] == m1["id"]

        for h in receiver.hits:
            assert h.headers["content-type"] == "application/json"
            sig = h.headers["hubbub-signature"]
            assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", sig)
            assert abs(int(sig[2:].split(",")[0]) - time.time()) < 60
            assert verify(SECRET, h.body, sig)
            assert not verify(SECRET + "x", h.body, sig)  # a wrong secret fails
            assert not verify(SECRET, h.body + b" ", sig)  # so does a changed body
    finally:
        server.stop()
        await receiver.close()


async def test_order_per_room_over_200_messages_in_several_rooms(data_dir: Path) -> None:
    receiver = await Receiver().start()
    server = await start(hooked(data_dir, receiver))
    rooms = [uniq(f"order{i}-") for i in range(4)]
    try:
        async with client(server.url) as http:

            async def sender(room: str) -> None:
                for i in range(50):
                    await say(http, f"s-{room}", room, f"{i}")

            await asyncio.gather(*(sender(r) for r in rooms))
        want = [str(i) for i in range(50)]
        await receiver.wait(lambda: all(len(receiver.texts(r)) >= 50 for r in rooms))
        for room in rooms:
            assert receiver.texts(room) == want
            seqs = [
                e["data"]["seq"]
                for e in receiver.events()
                if e["room_id"] == room and e["type"] == "message"
            ]
            assert seqs == list(range(1, 51))
        assert len(receiver.hits) == len(receiver.events())  # a healthy receiver: no repeats
    finally:
        server.stop()
        await receiver.close()


async def test_failing_receiver_is_retried_nothing_lost_order_kept(data_dir: Path) -> None:
    receiver = await Receiver(status=500).start()
    server = await start(hooked(data_dir, receiver))
    rooms = [uniq("retry-a-"), uniq("retry-b-")]
    try:
        async with client(server.url) as http:
            for i in range(15):
                for room in rooms:
                    await say(http, "r", room, f"{i}")
            await receiver.wait(lambda: receiver.refused >= 2, timeout=15)
            assert receiver.hits == []
            receiver.status = 200
            await receiver.wait(lambda: all(len(receiver.texts(r)) >= 15 for r in rooms))
            for room in rooms:
                assert receiver.texts(room) == [str(i) for i in range(15)]
            metrics = (await http.get("/metrics")).text
        failures = re.search(r"^hubbub_webhook_failures_total (\S+)$", metrics, re.M)
        delivered = re.search(r"^hubbub_webhook_deliveries_total (\S+)$", metrics, re.M)
        assert failures and float(failures.group(1)) >= 2
        assert delivered and float(delivered.group(1)) >= 30
    finally:
        server.stop()
        await receiver.close()


async def test_sigkill_with_deliveries_pending_delivers_after_restart(data_dir: Path) -> None:
    receiver = Receiver()  # not even listening yet: the receiver is down at the start
    server = await start(hooked(data_dir, receiver))
    room = uniq("killed-")
    try:
        async with client(server.url) as http:
            for i in range(30):
                await say(http, "k", room, f"{i}")
        await asyncio.sleep(1.5)  # a few failed attempts
        server.kill()
        await receiver.start()
        await asyncio.sleep(0.5)
        assert receiver.hits == []  # nobody delivers while the server is dead
        server = await start(hooked(data_dir, receiver, port=server.port))
        await receiver.wait(lambda: len(receiver.texts(room)) >= 30)
        assert receiver.texts(room) == [str(i) for i in range(30)]
        async with client(server.url) as http:  # and it goes on live after the backlog
            await say(http, "k", room, "after")
        await receiver.wait(lambda: receiver.texts(room)[-1:] == ["after"])
    finally:
        server.stop()
        await receiver.close()


async def test_sigkill_mid_stream_loses_nothing(data_dir: Path) -> None:
    """Killed while delivering (some sent, some not): after restart every change arrives, in
    order per room, once the receiver dedupes by id."""
    receiver = await Receiver().start()
    server = await start(hooked(data_dir, receiver))
    room = uniq("midway-")
    try:
        async with client(server.url) as http:
            for i in range(40):
                await say(http, "k", room, f"{i}")
                if i == 20:
                    receiver.status = 503
        await asyncio.sleep(0.3)
        server.kill()
        receiver.status = 200
        server = await start(hooked(data_dir, receiver, port=server.port))
        await receiver.wait(lambda: len(receiver.texts(room)) >= 40)
        assert receiver.texts(room) == [str(i) for i in range(40)]
    finally:
        server.stop()
        await receiver.close()


async def test_changes_stored_while_webhooks_are_off_are_not_sent(data_dir: Path) -> None:
    room = uniq("before-")
    server = await start(Server(data_dir, auth="trust", env=FAST))
    try:
        async with client(server.url) as http:
            await say(http, "o", room, "while off")
    finally:
        server.stop()
    receiver = await Receiver().start()
    server = await start(hooked(data_dir, receiver, port=server.port))
    try:
        async with client(server.url) as http:
            await say(http, "o", room, "while on")
        await receiver.wait(lambda: receiver.texts(room) == ["while on"])
        await asyncio.sleep(0.5)
        assert receiver.texts(room) == ["while on"]
    finally:
        server.stop()
        await receiver.close()


def test_a_webhook_url_without_a_secret_or_not_http_is_refused(data_dir: Path) -> None:
    for env, said in (
        ({"HUBBUB_WEBHOOK_URL": "http://127.0.0.1:9/hook"}, "--webhook-secret"),
        ({"HUBBUB_WEBHOOK_URL": "ftp://x/y", "HUBBUB_WEBHOOK_SECRET": "s"}, "http"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "hubbub", "serve", "--port", "0", "--data-dir", str(data_dir)],
            env={**os.environ, **env},
            capture_output=True,
            timeout=30,
        )
        assert done.returncode == 2
        assert said in done.stderr.decode()


async def test_two_nodes_on_postgresql_deliver_each_change_once(data_dir: Path) -> None:
    url = create_pg_database()
    receiver = await Receiver().start()
    env = {"HUBBUB_DATABASE": url}
    nodes = [
        await start(hooked(data_dir / "a", receiver, env=env)),
        await start(hooked(data_dir / "b", receiver, env=env)),
    ]
    room = uniq("pg-")
    try:
        async with client(nodes[0].url) as a, client(nodes[1].url) as b:
            for i in range(40):
                await say((a, b)[i % 2], "p", room, f"{i}")
        await receiver.wait(lambda: len(receiver.texts(room)) >= 40)
        await asyncio.sleep(1.0)  # a second deliverer would be sending its copies by now
        assert receiver.texts(room) == [str(i) for i in range(40)]
        assert len(receiver.hits) == len(receiver.events())  # each change POSTed once overall
        leaders = [n for n in nodes if "this node delivers" in n.log()]
        assert len(leaders) == 1

        # The delivering node dies: the other takes the lock over and goes on.
        leaders[0].kill()
        survivor = next(n for n in nodes if n is not leaders[0])
        async with client(survivor.url) as s:
            await say(s, "p", room, "after failover")
        await receiver.wait(lambda: receiver.texts(room)[-1:] == ["after failover"], timeout=30)
        assert receiver.texts(room) == [str(i) for i in range(40)] + ["after failover"]
    finally:
        for n in nodes:
            if n.proc is not None and n.proc.poll() is None:
                n.stop()
        await receiver.close()
        drop_pg_database(url)


async def test_a_change_failing_past_the_retry_window_is_given_up_and_the_log_goes_on(
    data_dir: Path,
) -> None:
    """The 24 h window, shortened: the worker over a real store and a real receiver that
    refuses everything gives each change up after its window, moves the cursor past it and
    never sends it again."""
    room = uniq("doomed-")
    server = await start(Server(data_dir, auth="trust", env=FAST))
    try:
        async with client(server.url) as http:
            for i in range(3):
                await say(http, "d", room, f"{i}")
    finally:
        server.stop()
    receiver = await Receiver(status=500).start()
    db_path = data_dir / "hubbub.db"
    with sqlite3.connect(db_path) as db:  # as if webhooks had been on before these changes
        db.execute(
            "INSERT INTO webhook_cursors (endpoint, position, updated_at) VALUES (?, 0, 'x')",
            (endpoint_key(receiver.url),),
        )
        head = db.execute("SELECT value FROM counters WHERE name = 'messages'").fetchone()[0]
    store = SqlStore(f"sqlite:///{db_path}")
    await store.start()
    given_up: list[int] = []
    worker = WebhookWorker(
        store.db,
        FileLeadership(data_dir / "test.lock"),
        receiver.url,
        SECRET,
        give_up_after=0.0,
        first_retry=0.01,
        on_given_up=lambda: given_up.append(1),
    )
    worker.start()
    try:
        await receiver.wait(lambda: len(given_up) >= 4)  # member_joined + 3 messages
        await asyncio.sleep(0.5)
        with sqlite3.connect(db_path) as db:
            [cursor] = db.execute("SELECT position FROM webhook_cursors").fetchone()
        assert cursor == head
        assert receiver.refused == 4  # one attempt each: already past their window
        receiver.status = 200
        await asyncio.sleep(0.6)
        assert receiver.hits == []  # given up means never sent again
    finally:
        await worker.close()
        await store.close()
        await receiver.close()


@pytest.mark.parametrize(("n_rooms", "per_room"), [(8, 250), (1, 1000)])
async def test_drains_a_backlog(data_dir: Path, n_rooms: int, per_room: int) -> None:
    """The throughput figures in docs/performance.md: a backlog (2,000 messages in 8 rooms;
    1,000 in one) stored while the receiver was down, drained by a restarted server (no
    back-off pending) to a local receiver; also a SIGTERM with deliveries pending loses
    nothing."""
    receiver = Receiver()
    server = await start(hooked(data_dir, receiver))
    rooms = [uniq(f"bulk{i}-") for i in range(n_rooms)]
    try:
        async with client(server.url, timeout=30) as http:

            async def sender(room: str) -> None:
                for i in range(per_room):
                    await say(http, "b", room, f"{i}")

            await asyncio.gather(*(sender(r) for r in rooms))
        assert server.stop() == 0
        await receiver.start()
        server = await start(hooked(data_dir, receiver, port=server.port))
        await receiver.wait(lambda: len(receiver.hits) >= n_rooms * (per_room + 1), timeout=90)
        took = receiver.hits[-1].at - receiver.hits[0].at
        total = len(receiver.hits)
        rate = total / took
        print(f"\nwebhooks, {n_rooms} room(s): {total} POSTs in {took:.2f} s = {rate:.0f}/s")
        for room in rooms:
            assert receiver.texts(room) == [str(i) for i in range(per_room)]
    finally:
        server.stop()
        await receiver.close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
