"""Test support: a real Hubbub server process on a free port, and an SSE client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SECRET = "test-secret-0123456789abcdef-xyz"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> int:
    """Signal ``proc`` and wait; a process that outlives ``timeout`` is killed."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Server:
    """``hubbub serve`` in a subprocess, exactly as a user runs it."""

    def __init__(
        self,
        data_dir: Path,
        *,
        auth: str = "trust",
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.data_dir = data_dir
        self.auth = auth
        self.env = env or {}
        self.args = args or []
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "HUBBUB_SECRET": SECRET,
            "HUBBUB_LOG_LEVEL": "info",
            **self.env,
        }
        cmd = [
            sys.executable,
            "-m",
            "hubbub",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--auth",
            self.auth,
            "--host",
            self.host,
            *self.args,
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        # Not left running: a fixture that fails here never reaches its stop().
        stop_process(self.proc, signal.SIGKILL, 5)
        raise RuntimeError(f"server did not start in {timeout:g} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return stop_process(self.proc, sig, timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


@dataclass
class SSEEvent:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SSEStream:
    """Collects the events of one open stream in the background."""

    events: list[SSEEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    status: int | None = None
    headers: httpx.Headers | None = None
    closed: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def messages(self) -> list[dict[str, Any]]:
        return [e.json() for e in self.events if e.event == "message"]

    def named(self, name: str) -> list[SSEEvent]:
        return [e for e in self.events if e.event == name]

    def last_id(self) -> str | None:
        ids = [e.id for e in self.events if e.id is not None]
        return ids[-1] if ids else None

    async def wait_for(self, predicate: Callable[[SSEStream], bool], timeout: float = 10) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or self.closed:
                if predicate(self):
                    return
                raise AssertionError(
                    f"timed out; have {len(self.events)} events, closed={self.closed}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    async def wait_messages(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        await self.wait_for(lambda s: len(s.messages()) >= n, timeout)
        return self.messages()

    def _add(self, ev: SSEEvent) -> None:
        self.events.append(ev)
        self._changed.set()


async def _consume(response: httpx.Response, stream: SSEStream) -> None:
    event, data, last_id = "message", [], None
    try:
        async for line in response.aiter_lines():
            if line == "":
                if data:
                    stream._add(SSEEvent(event, "\n".join(data), last_id))
                event, data, last_id = "message", [], None
                continue
            if line.startswith(":"):
                stream.comments.append(line)
                stream._changed.set()
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id":
                last_id = value
            elif name == "retry":
                stream.retry = int(value)
    except (httpx.HTTPError, asyncio.CancelledError):
        pass
    finally:
        stream.closed = True
        stream._changed.set()


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    connected: bool = True,
) -> AsyncIterator[SSEStream]:
    """Open an SSE stream; by default wait for its ``connected`` event before yielding."""
    stream = SSEStream()
    request = client.build_request("GET", url, headers=headers, params=params)
    response = await client.send(request, stream=True)
    stream.status = response.status_code
    stream.headers = response.headers
    task = None
    try:
        if response.status_code == 200:
            task = asyncio.create_task(_consume(response, stream))
            if connected:
                await stream.wait_for(lambda s: bool(s.named("connected")), 10)
        else:
            await response.aread()
            stream.closed = True
        yield stream
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await response.aclose()


def client(base_url: str, **kw: Any) -> httpx.AsyncClient:
    kw.setdefault("timeout", httpx.Timeout(30.0))
    kw.setdefault("limits", httpx.Limits(max_connections=500, max_keepalive_connections=100))
    return httpx.AsyncClient(base_url=base_url, **kw)


def send_body(room: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"room_id": room, "message": text, **extra}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return dict(body["error"])


# PostgreSQL and Redis: real services on this machine (CI starts them); skipped elsewhere,
# but never under CI=true.

PG_ADMIN = os.environ.get("HUBBUB_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HUBBUB_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _service_missing(what: str, detail: str) -> None:
    import pytest

    message = f"{what} is not reachable ({detail})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}: under CI it must run (.ci/run starts it)")
    pytest.skip(f"{message}; start it to run this test")


def _pg_admin_exec(sql: str) -> None:
    import asyncio as _asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN, timeout=3)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        _asyncio.get_running_loop()
    except RuntimeError:
        _asyncio.run(run())
        return
    # Called from an async test: run it on a loop of its own in a thread.
    import threading

    failure: list[BaseException] = []

    def in_thread() -> None:
        try:
            _asyncio.run(run())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def create_pg_database() -> str:
    import secrets as _secrets

    name = "hubbub_t_" + _secrets.token_hex(6)
    try:
        _pg_admin_exec(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        _service_missing("PostgreSQL at 127.0.0.1:5432", repr(exc)[:200])
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with contextlib.suppress(Exception):
        _pg_admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_available() -> None:
    import redis as _redis

    try:
        _redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        _service_missing("Redis at 127.0.0.1:6379", repr(exc)[:200])


PASSWORD = "correct horse battery"


@dataclass
class Account:
    """A signed-up jwt-mode user and their access token."""

    id: str
    username: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def signup(server: Server, prefix: str) -> Account:
    import uuid as _uuid

    name = f"{prefix}_{_uuid.uuid4().hex[:10]}"
    async with client(server.url) as c:
        r = await c.post("/auth/register", json={"username": name, "password": PASSWORD})
        assert r.status_code == 201, r.text
        r = await c.post("/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        body = r.json()
    return Account(body["user"]["id"], name, body["access_token"])


def dechunk(raw: bytes) -> bytes:
    """The body of a chunked HTTP response, as far as it arrived complete."""
    _, _, rest = raw.partition(b"\r\n\r\n")
    out = bytearray()
    while True:
        size_line, sep, tail = rest.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        if size == 0 or len(tail) < size + 2:
            break
        out += tail[:size]
        rest = tail[size + 2 :]
    return bytes(out)


def user(name: str) -> dict[str, str]:
    """Trust-mode identity for one request."""
    return {"User-ID": name}


async def say(http: httpx.AsyncClient, who: str, room: str, text: str) -> dict[str, Any]:
    """Send as ``who`` in trust mode; the stored message."""
    r = await http.post(
        "/chat/messages", headers=user(who), json={"room_id": room, "message": text}
    )
    assert r.status_code == 201, r.text
    return dict(r.json()["message"])
