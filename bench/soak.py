#!/usr/bin/env python3
"""Soak and reconnect storm (``make soak``; not part of ``make test``).

Two scenarios against one ``hubbub serve --auth trust`` (SQLite, in-memory fan-out) on a free
port and a fresh data dir:

* **soak**: ``--streams`` room SSE streams (10 per room, one user each) held for
  ``--duration`` seconds while ``--reconnects`` random streams per second are closed and
  reopened with ``Last-Event-ID`` and ``--send-rate`` messages per second go to random rooms.
  Every ``--sample`` seconds: the server's RSS and open fds (``/proc/<pid>``); per minute: the
  delivery latency p50/p99 (live deliveries only, a replay is not a delivery latency). At the
  end: no loss (every stream saw every message of its room exactly once, in order, across its
  reconnects), the RSS slope after warm-up (least squares, KiB/min), fds at start and end.
* **storm**: ``--storm-streams`` streams connected, then the server is restarted
  (``--restart term``: SIGTERM, or ``kill``: SIGKILL) and started again on the same port and
  data dir. Every client comes back by itself as a browser would: after the ``retry:`` the
  server sent it (jittered per connection), after ``Retry-After`` when refused with 503
  ``server_busy`` (admission control), resuming with ``Last-Event-ID``. Messages keep being
  sent during the outage (retried with the same ``client_msg_id`` until the new server takes
  them). Reported: time to full recovery (every stream open again and holding every message
  sent until then), peak RSS during recovery, refusals, and no loss.

The clients are one asyncio process (uvloop) with a small ``asyncio.Protocol`` per stream that
parses chunked HTTP and SSE itself: httpx per stream would not hold 19,000 streams on 2 cores.
Source addresses are spread over 127.0.0.2-127.0.0.17 so ephemeral ports never run out, and
RLIMIT_NOFILE is raised to its hard limit (the server inherits it).

    python3 bench/soak.py --only soak --streams 1000 --duration 120 --write docs/performance.md
    python3 bench/soak.py --only storm --storm-streams 19000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # bench/ is a directory of scripts, not a package
    CHECKOUT,
    git_state,
    hubbub_exe,
    machine,
    now_utc,
    proc_cpu_s,
)

sys.path.insert(0, str(CHECKOUT))
from tests.support import stop_process

HOST = "127.0.0.1"
PER_ROOM = 10
SOURCES = [f"127.0.0.{i}" for i in range(2, 18)]
MARK_START, MARK_END = "<!-- soak:start -->", "<!-- soak:end -->"
SEQ = re.compile(rb'"seq":(\d+)')
STAMP = re.compile(rb'"timestamp":([0-9.]+)')

Json = dict[str, Any]


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), "[soak]", *parts, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ the server


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port != 8090:  # the harness's port: never ours
            return port


def rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


RUNNING: list[HubbubProcess] = []  # stopped on any way out of main()


class HubbubProcess:
    """``hubbub serve`` on one port and data dir, startable again after it stopped."""

    def __init__(self, port: int, data_dir: Path, log_path: Path, extra: list[str]) -> None:
        self.port = port
        self.data_dir = data_dir
        self.log_path = log_path
        self.cmd = [
            hubbub_exe(),
            "serve",
            *f"--host {HOST} --port {port} --auth trust --rate-limit-per-second 0".split(),
            "--data-dir",
            str(data_dir),
            *extra,
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        RUNNING.append(self)
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{self.port}") as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"hubbub exited with {self.proc.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz", timeout=5)).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError("hubbub did not become ready")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        return stop_process(self.proc, sig, timeout)

    def errors_in_log(self) -> int:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text.count("Traceback")


# ------------------------------------------------------------------------------ the clients


@dataclass
class Totals:
    """What every stream adds up to (kept here, not per stream, to stay small)."""

    connects: int = 0
    opened: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    failed_connects: int = 0
    dropped: int = 0
    delivered: int = 0
    duplicates: int = 0
    gaps: int = 0
    retry_values: set[int] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)


class Stream(asyncio.Protocol):
    """One room SSE stream that behaves like a browser's ``EventSource``: reconnects by
    itself after ``retry:`` (or ``Retry-After`` when refused) and resumes by
    ``Last-Event-ID``; checks that messages come exactly once and in order."""

    __slots__ = (
        "buf",
        "chunks",
        "closing",
        "head_done",
        "index",
        "last_id",
        "last_seq",
        "live",
        "opened_at",
        "pool",
        "retry_ms",
        "room",
        "status",
        "transport",
        "user",
    )

    def __init__(self, pool: Pool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.room = f"soak-{index // PER_ROOM}"
        self.user = f"s{index}"
        self.last_id: bytes | None = None
        self.last_seq = 0
        self.retry_ms = 3000
        self.transport: asyncio.Transport | None = None
        self.live = False
        self.closing = False
        self.opened_at = 0.0
        self._reset()

    def _reset(self) -> None:
        self.buf = bytearray()
        self.chunks = bytearray()
        self.head_done = False
        self.status = 0

    # connecting ---------------------------------------------------------------------------

    async def connect(self) -> bool:
        pool = self.pool
        pool.totals.connects += 1
        self._reset()
        self.closing = False
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(
                lambda: self,
                HOST,
                pool.port,
                local_addr=(SOURCES[self.index % len(SOURCES)], 0),
            )
        except OSError:
            pool.totals.failed_connects += 1
            self.later(self.retry_ms / 1000)
            return False
        return True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's is not one
        resume = b"Last-Event-ID: %s\r\n" % self.last_id if self.last_id else b""
        transport.write(
            b"GET /chat/room/%s/events HTTP/1.1\r\nHost: %s:%d\r\nUser-ID: %s\r\n"
            b"Accept: text/event-stream\r\n%s\r\n"
            % (self.room.encode(), HOST.encode(), self.pool.port, self.user.encode(), resume)
        )

    def later(self, seconds: float) -> None:
        self.pool.schedule(self, seconds)

    def reopen_now(self) -> None:
        """The soak's forced reconnect: close and come back at once with Last-Event-ID."""
        if self.transport is not None and self.live:
            self.closing = True
            self.transport.close()

    # reading --------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self.head_done:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            rest = bytes(self.buf[end + 4 :])
            self.buf = bytearray()
            self.head_done = True
            self.status = int(head.split(b" ", 2)[1])
            if self.status != 200:
                self._refused(head, rest)
                return
            self.live = True
            self.opened_at = time.time()
            self.pool.totals.opened += 1
            self.pool.open_count += 1
            data = rest
        if self.status != 200:
            return
        self._chunked(data)

    def _refused(self, head: bytes, body: bytes) -> None:
        code = f"http_{self.status}"
        with contextlib.suppress(ValueError, IndexError):
            code = json.loads(body[body.find(b"{") :])["error"]["code"]
        totals = self.pool.totals
        totals.refused[code] = totals.refused.get(code, 0) + 1
        wait = self.retry_ms / 1000
        found = re.search(rb"(?i)\r\nretry-after: *(\d+)", head)
        if found:
            wait = int(found.group(1)) + random.random()  # whole seconds, so spread within
        assert self.transport is not None
        self.transport.close()
        self.later(wait)
        self.closing = True  # connection_lost must not schedule a second attempt

    def _chunked(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out = self.chunks
        while True:
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                break
            size = int(buf[:line_end], 16)
            if size == 0:
                del buf[:]
                assert self.transport is not None
                self.transport.close()  # the server ended the stream
                break
            if len(buf) < line_end + 2 + size + 2:
                break
            out += buf[line_end + 2 : line_end + 2 + size]
            del buf[: line_end + 2 + size + 2]
        while True:
            end = out.find(b"\n\n")
            if end < 0:
                break
            self._event(bytes(out[:end]))
            del out[: end + 2]

    def _event(self, block: bytes) -> None:
        named = False
        data = b""
        for line in block.split(b"\n"):
            if line.startswith(b"id: "):
                self.last_id = line[4:]
            elif line.startswith(b"event: "):
                named = True
            elif line.startswith(b"data: "):
                data = line[6:]
            elif line.startswith(b"retry: "):
                self.retry_ms = int(line[7:])
                self.pool.totals.retry_values.add(self.retry_ms)
        if named or not data:
            return
        found = SEQ.search(data)
        if found is None:
            return
        seq = int(found.group(1))
        totals = self.pool.totals
        if seq == self.last_seq + 1:
            self.last_seq = seq
            totals.delivered += 1
            stamp = STAMP.search(data)
            if stamp is not None:
                sent = float(stamp.group(1))
                if sent > self.opened_at:  # live, not replayed
                    totals.latencies.append(time.time() - sent)
        elif seq <= self.last_seq:
            totals.duplicates += 1
        else:
            totals.gaps += 1
            self.last_seq = seq

    def connection_lost(self, exc: Exception | None) -> None:
        pool = self.pool
        if self.live:
            pool.open_count -= 1
        was_live, self.live = self.live, False
        self.transport = None
        if pool.stopping:
            return
        if self.closing:  # we closed it: the soak's forced reconnect, or a refusal
            if was_live:
                pool.schedule(self, 0)
            return
        pool.totals.dropped += 1
        pool.schedule(self, self.retry_ms / 1000)  # what EventSource does


class Pool:
    """All the streams, their reconnect timers, and the rooms' expected heads."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.totals = Totals()
        self.streams = [Stream(self, i) for i in range(count)]
        self.open_count = 0
        self.stopping = False
        self.pending: set[asyncio.Task[bool]] = set()

    def schedule(self, stream: Stream, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(seconds, self._go, stream)

    def _go(self, stream: Stream) -> None:
        if self.stopping or stream.transport is not None:
            return
        task = asyncio.get_running_loop().create_task(stream.connect())
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def open_all(self, concurrency: int = 200) -> float:
        """Connect every stream (bounded concurrency, so the first connect is not a storm);
        the seconds it took until all were open."""
        started = time.monotonic()
        gate = asyncio.Semaphore(concurrency)

        async def one(s: Stream) -> None:
            async with gate:
                await s.connect()
                while not s.live and not self.stopping:
                    await asyncio.sleep(0.05)

        await asyncio.gather(*[one(s) for s in self.streams])
        return time.monotonic() - started

    def rooms(self) -> list[str]:
        return sorted({s.room for s in self.streams})

    def close_all(self) -> None:
        self.stopping = True
        for s in self.streams:
            if s.transport is not None:
                s.transport.abort()


class Sender:
    """Steady sends to random rooms by a few workers, each send retried with its
    ``client_msg_id`` until stored (a send in flight across a restart is stored once);
    remembers each room's head. A queue and fixed workers, not a task per send: the rate is
    the schedule's, and a slow server shows as latency, not as a pile of waiting requests."""

    WORKERS = 16

    def __init__(self, port: int, rooms: list[str], rate: float) -> None:
        self.base = f"http://{HOST}:{port}"
        self.rooms = rooms
        self.rate = rate
        self.heads: dict[str, int] = {}
        self.sent = 0
        self.retries = 0
        self.enqueued = 0
        self.unfinished: set[int] = set()
        self._stop = False

    def done_before(self, mark: int) -> bool:
        """Whether every send scheduled before ``mark`` is stored."""
        return not any(n < mark for n in self.unfinished)

    async def _one(self, http: httpx.AsyncClient, n: int) -> None:
        room = random.choice(self.rooms)
        body: dict[str, Any] = {
            "room_id": room,
            "message": f"m{n}",
            "client_msg_id": f"soak-{n}",
        }
        while True:
            body["timestamp"] = time.time()
            try:
                r = await http.post("/chat/messages", json=body, headers={"User-ID": "pub"})
            except httpx.HTTPError:
                r = None
            if r is not None and r.status_code in (200, 201):
                seq = int(r.json()["message"]["seq"])
                self.heads[room] = max(self.heads.get(room, 0), seq)
                self.sent += 1 if r.status_code == 201 else 0
                return
            self.retries += 1
            await asyncio.sleep(0.2)

    async def _worker(self, http: httpx.AsyncClient, queue: asyncio.Queue[int]) -> None:
        while True:
            n = await queue.get()
            try:
                await self._one(http, n)
            finally:
                self.unfinished.discard(n)
                queue.task_done()

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.WORKERS, max_keepalive_connections=self.WORKERS)
        queue: asyncio.Queue[int] = asyncio.Queue()
        async with httpx.AsyncClient(base_url=self.base, limits=limits, timeout=30) as http:
            loop = asyncio.get_running_loop()
            workers = [loop.create_task(self._worker(http, queue)) for _ in range(self.WORKERS)]
            started = time.monotonic()
            while not self._stop:
                due = int((time.monotonic() - started) * self.rate)
                while self.enqueued < due:
                    self.unfinished.add(self.enqueued)
                    queue.put_nowait(self.enqueued)
                    self.enqueued += 1
                await asyncio.sleep(0.02)
            await queue.join()
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def stop(self) -> None:
        self._stop = True


def behind(pool: Pool, heads: dict[str, int]) -> int:
    """Streams not open or not holding their room's head yet."""
    return sum(1 for s in pool.streams if not s.live or s.last_seq < heads.get(s.room, 0))


async def settle(pool: Pool, sender: Sender, timeout: float) -> int:
    """Wait until every stream holds its room's last message; the streams still behind."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = behind(pool, sender.heads)
        if left == 0:
            return 0
        await asyncio.sleep(0.25)
    return behind(pool, sender.heads)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, KiB), in KiB per minute."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    var = sum((p[0] - mx) ** 2 for p in points)
    if var == 0:
        return float("nan")
    return 60 * sum((p[0] - mx) * (p[1] - my) for p in points) / var


def loss_report(pool: Pool, sender: Sender, left: int) -> Json:
    t = pool.totals
    expected = sum(sender.heads.get(s.room, 0) for s in pool.streams)
    held = sum(min(s.last_seq, sender.heads.get(s.room, 0)) for s in pool.streams)
    # A stream not back yet has lost nothing (it resumes from its Last-Event-ID); an open
    # stream still behind after the settling time, a gap or a duplicate is a loss.
    not_back = sum(1 for s in pool.streams if not s.live)
    return {
        "messages_stored": sender.sent,
        "deliveries_expected": expected,
        "deliveries_held": held,
        "streams_behind": left,
        "streams_not_back": not_back,
        "duplicates": t.duplicates,
        "gaps": t.gaps,
        "lossless": left == not_back and t.duplicates == 0 and t.gaps == 0,
        "complete": left == 0 and held == expected,
    }


# ------------------------------------------------------------------------------ scenarios


async def soak(args: argparse.Namespace, workdir: Path) -> Json:
    port = free_port()
    server = HubbubProcess(port, workdir / "soak-data", workdir / "soak.log", args.server_arg)
    server.start()
    await server.ready()
    pool = Pool(port, args.streams)
    log(f"soak: opening {args.streams:,} streams on port {port}")
    connect_s = await pool.open_all()
    log(f"soak: {pool.open_count:,} open in {connect_s:.1f} s")
    sender = Sender(port, pool.rooms(), args.send_rate)
    pid = server.pid
    started = time.monotonic()
    cpu0 = proc_cpu_s(pid)
    samples: list[tuple[float, int, int]] = [(0.0, rss_kib(pid), open_fds(pid))]
    minutes: list[Json] = []
    reconnects = 0
    send_task = asyncio.get_running_loop().create_task(sender.run())

    async def churn() -> None:
        nonlocal reconnects
        tick = 0.1
        owed = 0.0
        while time.monotonic() - started < args.duration:
            owed += args.reconnects * tick
            while owed >= 1:
                owed -= 1
                stream = random.choice(pool.streams)
                if stream.live:
                    stream.reopen_now()
                    reconnects += 1
            await asyncio.sleep(tick)

    churner = asyncio.get_running_loop().create_task(churn())
    next_sample = args.sample
    next_minute = 60.0
    minute_start_delivered = 0
    minute_start_reconnects = 0
    while (elapsed := time.monotonic() - started) < args.duration:
        await asyncio.sleep(min(1.0, args.duration - elapsed))
        elapsed = time.monotonic() - started
        if elapsed >= next_sample:
            samples.append((elapsed, rss_kib(pid), open_fds(pid)))
            next_sample += args.sample
        if elapsed >= next_minute or elapsed >= args.duration:
            lat = pool.totals.latencies
            minutes.append(
                {
                    "minute": len(minutes) + 1,
                    "rss_mib": samples[-1][1] / 1024,
                    "fds": samples[-1][2],
                    "p50_ms": percentile(lat, 0.5) * 1000,
                    "p99_ms": percentile(lat, 0.99) * 1000,
                    "deliveries": pool.totals.delivered - minute_start_delivered,
                    "reconnects": reconnects - minute_start_reconnects,
                    "open": pool.open_count,
                }
            )
            log(
                f"soak: min {len(minutes)}: RSS {samples[-1][1] / 1024:.1f} MiB, "
                f"fds {samples[-1][2]}, p99 {minutes[-1]['p99_ms']:.1f} ms, "
                f"{pool.open_count:,} open"
            )
            pool.totals.latencies = []
            minute_start_delivered = pool.totals.delivered
            minute_start_reconnects = reconnects
            next_minute += 60
    await churner
    sender.stop()
    await send_task
    cpu_s = proc_cpu_s(pid) - cpu0
    left = await settle(pool, sender, 60)
    end_sample = (time.monotonic() - started, rss_kib(pid), open_fds(pid))
    pool.close_all()
    server.stop()
    warm = [(t, float(r)) for t, r, _ in samples if t >= args.warmup]
    return {
        "streams": args.streams,
        "duration_s": args.duration,
        "reconnects_per_s": args.reconnects,
        "send_rate": args.send_rate,
        "connect_s": connect_s,
        "reconnects": reconnects,
        "server_cpu_pct": 100 * cpu_s / args.duration,
        "rss_start_mib": samples[0][1] / 1024,
        "rss_end_mib": end_sample[1] / 1024,
        "rss_slope_kib_min": slope_per_minute(warm),
        "warmup_s": args.warmup,
        "fds_start": samples[0][2],
        "fds_end": end_sample[2],
        "minutes": minutes,
        "refused": dict(pool.totals.refused),
        "dropped_by_server": pool.totals.dropped,
        "tracebacks": server.errors_in_log(),
        **loss_report(pool, sender, left),
    }


async def storm(args: argparse.Namespace, workdir: Path) -> Json:
    port = free_port()
    server = HubbubProcess(port, workdir / "storm-data", workdir / "storm.log", args.server_arg)
    server.start()
    await server.ready()
    pool = Pool(port, args.storm_streams)
    log(f"storm: opening {args.storm_streams:,} streams on port {port}")
    connect_s = await pool.open_all()
    rss_before = rss_kib(server.pid)
    log(f"storm: {pool.open_count:,} open in {connect_s:.1f} s, RSS {rss_before / 1024:.0f} MiB")
    sender = Sender(port, pool.rooms(), args.send_rate)
    send_task = asyncio.get_running_loop().create_task(sender.run())
    await asyncio.sleep(5)
    refused_before = dict(pool.totals.refused)
    sig = signal.SIGKILL if args.restart == "kill" else signal.SIGTERM
    log(f"storm: restarting the server ({args.restart})")
    t0 = time.monotonic()
    exit_code = server.stop(sig)
    down_s = time.monotonic() - t0
    server.start()
    # The new server is "up" when /healthz answers; asked beside the clients, not before them
    # (its answer waits in the same accept queue as the 19,000 reconnects).
    up_task = asyncio.get_running_loop().create_task(server.ready(args.storm_timeout))
    up_s: float | None = None
    mark = 0
    peak = 0
    recovered_s: float | None = None
    targets: dict[str, int] | None = None
    open_curve: list[tuple[float, int]] = []
    while time.monotonic() - t0 < args.storm_timeout:
        await asyncio.sleep(0.25)
        now = time.monotonic() - t0
        if up_s is None and up_task.done():
            up_task.result()
            up_s = now
            mark = sender.enqueued  # the sends scheduled while the server was away
            log(
                f"storm: old server gone after {down_s:.1f} s (exit {exit_code}), "
                f"new one answering at {up_s:.1f} s"
            )
        peak = max(peak, rss_kib(server.pid))
        if not open_curve or now - open_curve[-1][0] >= 5:
            open_curve.append((now, pool.open_count))
            log(f"storm: +{now:.0f} s: {pool.open_count:,} open, RSS {peak / 1024:.0f} MiB peak")
        if up_s is not None and targets is None and sender.done_before(mark):
            targets = dict(sender.heads)  # everything sent during the outage is stored now
        if targets is not None and behind(pool, targets) == 0:
            recovered_s = time.monotonic() - t0
            break
    if not up_task.done():
        up_task.cancel()
    log(f"storm: recovered in {recovered_s} s")
    sender.stop()
    await send_task
    left = await settle(pool, sender, 60)
    refused = {
        k: v - refused_before.get(k, 0)
        for k, v in pool.totals.refused.items()
        if v - refused_before.get(k, 0)
    }
    rss_after = rss_kib(server.pid)
    pool.close_all()
    server.stop()
    return {
        "streams": args.storm_streams,
        "restart": args.restart,
        "connect_s": connect_s,
        "rss_before_mib": rss_before / 1024,
        "down_s": down_s,
        "up_s": up_s,
        "recovered_s": recovered_s,
        "peak_rss_mib": peak / 1024,
        "rss_after_mib": rss_after / 1024,
        "refused": refused,
        "failed_connects": pool.totals.failed_connects,
        "retry_values_seen": len(pool.totals.retry_values),
        "retry_min": min(pool.totals.retry_values, default=0),
        "retry_max": max(pool.totals.retry_values, default=0),
        "open_curve": open_curve,
        "tracebacks": server.errors_in_log(),
        **loss_report(pool, sender, left),
    }


# ------------------------------------------------------------------------------ report


def fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return "—" if v != v else f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def render(results: Json, facts: Json) -> str:
    m = facts["machine"]
    lines = [
        MARK_START,
        "## Soak and reconnect storm (bench/soak.py)",
        "",
        f"- date: {facts['date']}; machine: {m['nproc']} cores ({m['cpu_model']}), "
        f"{m['mem_gib']} GiB, Python {m['python']}, load average before "
        f"{m['loadavg'][0]}, box {m['busy_pct']} % busy; RLIMIT_NOFILE {facts['nofile']:,}",
        f"- Hubbub: {facts['git']}",
        f"- command: `{facts['command']}`",
        "- server: `hubbub serve --auth trust --rate-limit-per-second 0` (SQLite, memory "
        "broker, default limits: 100 streams per user, 500 pending streams, `retry:` "
        "3000 ms jittered to [3000, 6000)); clients: one asyncio process, room SSE "
        "streams, 10 per room, one user each; the full run is `make soak` (1 h soak, "
        "19,000-stream storm)",
        "",
    ]
    s = results.get("soak")
    if s is not None:
        lines += [
            f"### Soak: {s['streams']:,} streams, {s['reconnects_per_s']:g} reconnects/s, "
            f"{s['send_rate']:g} messages/s, {s['duration_s']:g} s",
            "",
            "| figure | value |",
            "|---|---|",
            f"| streams opened at start | {fmt(s['connect_s'])} s |",
            f"| reconnects done (close + reopen with `Last-Event-ID`) | {fmt(s['reconnects'])} |",
            f"| server CPU | {fmt(s['server_cpu_pct'])} % of one core |",
            f"| RSS start → end | {fmt(s['rss_start_mib'])} → {fmt(s['rss_end_mib'])} MiB |",
            f"| RSS slope after {s['warmup_s']:g} s warm-up (least squares) | "
            f"{fmt(s['rss_slope_kib_min'])} KiB/min |",
            f"| open fds start → end | {fmt(s['fds_start'])} → {fmt(s['fds_end'])} |",
            f"| messages stored | {fmt(s['messages_stored'])} |",
            f"| deliveries expected / held at the end | {fmt(s['deliveries_expected'])} / "
            f"{fmt(s['deliveries_held'])} |",
            f"| duplicates / gaps / streams behind | {s['duplicates']} / {s['gaps']} / "
            f"{s['streams_behind']} |",
            f"| streams the server dropped / refused | {fmt(s['dropped_by_server'])} / "
            f"{fmt(sum(s['refused'].values()))} {s['refused'] or ''} |",
            f"| tracebacks in the server log | {s['tracebacks']} |",
            f"| **no loss** | **{'yes' if s['lossless'] else 'NO'}** |",
            "",
            "| minute | RSS MiB | fds | open streams | deliveries | reconnects | p50 ms | p99 ms |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in s["minutes"]:
            lines.append(
                f"| {row['minute']} | {fmt(row['rss_mib'])} | {row['fds']:,} | "
                f"{row['open']:,} | {row['deliveries']:,} | {row['reconnects']:,} | "
                f"{fmt(row['p50_ms'])} | {fmt(row['p99_ms'])} |"
            )
        lines.append("")
    t = results.get("storm")
    if t is not None:
        since_up = (
            None if t["recovered_s"] is None or t["up_s"] is None else t["recovered_s"] - t["up_s"]
        )
        curve = ", ".join(f"{sec:.0f} s: {n:,}" for sec, n in t["open_curve"][:24])
        lines += [
            f"### Storm: {t['streams']:,} streams, server restarted ({t['restart']})",
            "",
            "| figure | value |",
            "|---|---|",
            f"| streams opened at start (200 at a time) | {fmt(t['connect_s'])} s |",
            f"| RSS before the restart | {fmt(t['rss_before_mib'])} MiB |",
            f"| old server gone / new one answering | {fmt(t['down_s'])} s / "
            f"{fmt(t['up_s'])} s after the signal |",
            f"| **full recovery** (every stream open again and holding every message sent "
            f"until then, counted from the signal) | **{fmt(t['recovered_s'])} s** "
            f"({fmt(since_up)} s after the new server answered) |",
            f"| peak RSS during recovery | {fmt(t['peak_rss_mib'])} MiB "
            f"(after: {fmt(t['rss_after_mib'])}) |",
            f"| refused during recovery (admission control) | "
            f"{fmt(sum(t['refused'].values()))} {t['refused'] or ''} |",
            f"| connects that failed (server down) | {fmt(t['failed_connects'])} |",
            f"| distinct `retry:` values seen | {fmt(t['retry_values_seen'])} "
            f"({t['retry_min']}–{t['retry_max']} ms) |",
            f"| messages stored | {fmt(t['messages_stored'])} |",
            f"| deliveries expected / held at the end | {fmt(t['deliveries_expected'])} / "
            f"{fmt(t['deliveries_held'])} |",
            f"| duplicates / gaps / streams behind (of which not reconnected yet) | "
            f"{t['duplicates']} / {t['gaps']} / {t['streams_behind']} "
            f"({t['streams_not_back']}) |",
            f"| tracebacks in the server logs | {t['tracebacks']} |",
            f"| **no loss** | **{'yes' if t['lossless'] else 'NO'}** |",
            "",
            f"Open streams after the signal: {curve}.",
            "",
        ]
    if facts.get("note"):
        lines += [f"Note: {facts['note']}", ""]
    lines.append(MARK_END)
    return "\n".join(lines)


def write(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(MARK_START) + ".*?" + re.escape(MARK_END), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


# ------------------------------------------------------------------------------ main


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--only", choices=("soak", "storm"), help="run one scenario [both]")
    ap.add_argument("--streams", type=int, default=5000, help="soak: streams [5000]")
    ap.add_argument("--duration", type=float, default=3600, help="soak: seconds [3600]")
    ap.add_argument("--reconnects", type=float, default=100, help="soak: reconnects/s [100]")
    ap.add_argument("--send-rate", type=float, default=50, help="messages/s [50]")
    ap.add_argument("--sample", type=float, default=5, help="soak: RSS/fd sample every [5] s")
    ap.add_argument("--warmup", type=float, help="soak: seconds left out of the RSS slope")
    ap.add_argument("--storm-streams", type=int, default=19000, help="storm: streams [19000]")
    ap.add_argument("--restart", choices=("term", "kill"), default="term", help="[term]")
    ap.add_argument("--storm-timeout", type=float, default=600, help="storm: give up after [600] s")
    ap.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra `hubbub serve` argument (repeat), e.g. --server-arg=--max-pending-streams=100",
    )
    ap.add_argument("--write", type=Path, help="update this markdown file's soak section")
    ap.add_argument("--note", help="a remark printed with the section")
    ap.add_argument("--keep", action="store_true", help="keep the data dirs and server logs")
    args = ap.parse_args(argv)
    if args.warmup is None:
        args.warmup = max(30.0, min(300.0, args.duration * 0.1))
    return args


async def amain(args: argparse.Namespace, workdir: Path) -> Json:
    results: Json = {}
    if args.only in (None, "soak"):
        results["soak"] = await soak(args, workdir)
        log("soak:", json.dumps({k: v for k, v in results["soak"].items() if k != "minutes"}))
    if args.only in (None, "storm"):
        results["storm"] = await storm(args, workdir)
        log("storm:", json.dumps({k: v for k, v in results["storm"].items() if k != "open_curve"}))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    nofile = raise_nofile()
    need = max(args.streams if args.only != "storm" else 0, 0)
    need = max(need, args.storm_streams if args.only != "soak" else 0)
    if nofile < need + 200:
        log(f"RLIMIT_NOFILE is {nofile}: {need:,} streams need about {need + 200:,}")
        return 2
    facts: Json = {
        "date": now_utc(),
        "machine": machine(),
        "git": git_state(),
        "command": shlex.join(
            ["python3", "bench/soak.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "nofile": nofile,
        "note": args.note,
    }
    workdir = Path(tempfile.mkdtemp(prefix="hubbub-soak-"))
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            results = runner.run(amain(args, workdir))
    finally:
        for server in RUNNING:
            if server.proc is not None and server.proc.poll() is None:
                server.stop(signal.SIGKILL)
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    text = render(results, facts)
    print(text)
    if args.write:
        write(args.write, text)
        log(f"wrote {args.write}")
    ok = all(r.get("lossless") and r.get("complete") for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    os.chdir(CHECKOUT)
    sys.exit(main())
