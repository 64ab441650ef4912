"""The scale-out suite: several real ``hubbub serve`` processes sharing real PostgreSQL and Redis.

Fixtures:

* ``pg_database`` — a fresh PostgreSQL database per test module (dropped afterwards);
* ``redis_prefix`` — a unique ``HUBBUB_BROKER_PREFIX`` per test, so no test sees another's
  pub/sub traffic;
* ``cluster`` — starts nodes sharing both, each on a free port with its own data dir; every
  node is stopped in the fixture's finalizer (SIGTERM, then SIGKILL), whatever the test did;
* ``pg_proxy`` — a TCP proxy to PostgreSQL that a test can switch off, silence or hold.

Nothing is mocked. Without PostgreSQL or Redis on this machine the tests skip (under ``CI=true``
they fail instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import (
    REDIS_URL,
    Server,
    SSEEvent,
    SSEStream,
    create_pg_database,
    drop_pg_database,
    free_port,
    open_stream,
    redis_available,
)

# Databases whose schema a node has already created. The first node on a fresh database starts
# alone, so that only the test written for it depends on concurrent first starts being safe.
_MIGRATED: set[str] = set()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test module."""
    url = create_pg_database()
    yield url
    drop_pg_database(url)
    _MIGRATED.discard(url)


@pytest.fixture
def redis_prefix() -> str:
    """A pub/sub channel prefix no other test uses."""
    redis_available()
    return f"hubbub:t{secrets.token_hex(5)}:room:"


class Cluster:
    """Nodes sharing one database and one broker; each on a free port with its own data dir."""

    def __init__(self, base: Path, database: str, broker: str, prefix: str) -> None:
        self.base = base
        self.database = database
        self.broker = broker
        self.prefix = prefix
        self.nodes: list[Server] = []

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {
            "HUBBUB_DATABASE": self.database,
            "HUBBUB_BROKER": self.broker,
            "HUBBUB_BROKER_PREFIX": self.prefix,
            "HUBBUB_RATE_LIMIT_PER_SECOND": "0",  # off, unless a test turns it on
            **(extra or {}),
        }

    def node(
        self,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        *,
        database: str | None = None,
    ) -> Server:
        """A node, not started (it is stopped at the end of the test all the same)."""
        full = self.env(env)
        if database is not None:
            full["HUBBUB_DATABASE"] = database
        server = Server(self.base / f"node{len(self.nodes)}", auth="trust", env=full, args=args)
        self.nodes.append(server)
        return server

    def start(
        self, count: int, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> list[Server]:
        """Start ``count`` nodes. On a fresh database the first starts alone (it creates the
        schema), the others start concurrently."""
        nodes = [self.node(env, args) for _ in range(count)]
        if self.database not in _MIGRATED:
            nodes[0].start()
            _MIGRATED.add(self.database)
            start_all(nodes[1:])
        else:
            start_all(nodes)
        return nodes

    def stop_all(self) -> None:
        """SIGTERM to every live node at once, then wait (SIGKILL after 10 s)."""
        live = [s for s in self.nodes if s.proc is not None and s.proc.poll() is None]
        for server in live:
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
        for server in live:
            server.stop(timeout=10)  # waits; kills if the drain hangs

    def logs(self, lines: int = 80) -> str:
        out = []
        for server in self.nodes:
            tail = "\n".join(server.log().splitlines()[-lines:])
            out.append(f"----- node {server.url} (log {server.log_path}) -----\n{tail}")
        return "\n".join(out)


def start_all(servers: list[Server]) -> None:
    """Start servers concurrently; raise the first failure."""
    errors: list[BaseException] = []

    def run(server: Server) -> None:
        try:
            server.start(timeout=30)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database: str, redis_prefix: str
) -> Iterator[Cluster]:
    group = Cluster(tmp_path, pg_database, REDIS_URL, redis_prefix)
    try:
        yield group
    finally:
        group.stop_all()
        if request.node.stash.get(_FAILED, False):
            print(group.logs())


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target, on its own event loop in a background thread.
    ``down()`` closes every open connection and refuses new ones; ``up()`` listens again;
    ``silent()`` is a network partition: connections stay open (new ones are accepted) but
    nothing gets through, either way; ``hold()`` makes new connections wait until ``release()``
    (to start several clients' first queries at the same moment)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.dropping = False
        self.gate: asyncio.Event | None = None  # hold(): new connections wait here
        self.waiting = 0

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self) -> TcpProxy:
        self.thread.start()
        self.up()
        return self

    def up(self) -> None:
        self._call(self._listen())

    def down(self) -> None:
        self._call(self._close())

    def silent(self, on: bool = True) -> None:
        self.dropping = on

    def hold(self) -> None:
        """New connections are accepted but wait (``waiting`` counts them) for ``release``."""
        self.gate = asyncio.Event()

    def release(self) -> None:
        gate = self.gate
        self.gate = None
        if gate is not None:
            self.loop.call_soon_threadsafe(gate.set)

    def stop(self) -> None:
        self.release()
        with contextlib.suppress(Exception):
            self.down()  # closing every connection ends every handler
            self._call(self._settle())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _settle(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        _, late = await asyncio.wait(tasks, timeout=2) if tasks else (set(), set())
        for task in late:
            task.cancel()

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _close(self) -> None:
        if self.server is not None:
            self.server.close()  # refuse new connections
            self.server = None
        for writer in list(self.writers):  # and drop the open ones
            writer.close()
        self.writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.dropping:  # accepted, never answered
            self.writers.add(writer)
            while await reader.read(65536):
                pass
            return
        if self.gate is not None:
            self.waiting += 1
            await self.gate.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.dropping:
                    continue
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            pass
        finally:
            writer.close()


def through(url: str, proxy: TcpProxy) -> str:
    """The same database URL, via the proxy."""
    scheme, rest = url.split("://", 1)
    creds_host, db = rest.split("/", 1)
    creds = creds_host.rsplit("@", 1)[0] + "@" if "@" in creds_host else ""
    return f"{scheme}://{creds}127.0.0.1:{proxy.port}/{db}"


@pytest.fixture
def pg_proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", 5432).start()
    try:
        yield proxy
    finally:
        proxy.stop()


# clients ---------------------------------------------------------------------------------


def http(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(30.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
    )


async def post(
    client: httpx.AsyncClient, user: str, room: str, text: str, **extra: Any
) -> httpx.Response:
    return await client.post(
        "/chat/messages",
        headers={"User-ID": user},
        json={"room_id": room, "message": text, **extra},
    )


async def history(client: httpx.AsyncClient, room: str, user: str = "auditor") -> list[Any]:
    """The room's whole history (pages of 200), oldest first."""
    out: list[Any] = []
    after = 0
    while True:
        r = await client.get(
            f"/chat/room/{room}/history",
            params={"user_id": user, "after": after, "limit": 200},
        )
        assert r.status_code == 200, r.text
        page = r.json()
        out.extend(page)
        if len(page) < 200:
            return out
        after = page[-1]["seq"]


class Arrivals:
    """When each message reached a stream (``time.perf_counter()``), by text."""

    def __init__(self, stream: SSEStream) -> None:
        self.at: dict[str, float] = {}
        add = stream._add

        def stamped(ev: SSEEvent) -> None:
            if ev.event == "message":
                self.at.setdefault(ev.json()["text"], time.perf_counter())
            add(ev)

        stream._add = stamped  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def streams(
    specs: list[tuple[httpx.AsyncClient, str, dict[str, Any]]],
) -> AsyncIterator[list[SSEStream]]:
    """Open several SSE streams at once (each waits for ``connected``)."""
    async with contextlib.AsyncExitStack() as stack:
        opened = await asyncio.gather(
            *[stack.enter_async_context(open_stream(c, path, **kw)) for c, path, kw in specs]
        )
        yield list(opened)


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [int(m["seq"]) for m in messages]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return bool(await predicate())
