"""Open N SSE streams as fast as the server takes them; report when each got its 200 headers.

A load client for the ``connect`` scenario, run in its own process:

    python bench/scenarios/opener.py --port 8090 --path '/chat/room/{room}/events?user_id=u{i}' \
        --conns 19000 --rooms 1900 [--tokens FILE --per-token 100] [--hold 2]

Stream ``i`` goes to room ``<prefix><i % rooms>``; with ``--tokens`` it sends
``Authorization: Bearer <token i // per-token>`` (one line per token in FILE). At most
``--inflight`` connects are pending at once; source addresses 127.0.0.2… spread the ephemeral
ports. Once every stream has its headers (or failed) it keeps them open ``--hold`` seconds,
reading and discarding, then prints one JSON object: established, failed (by reason),
``connect_time_s`` (first connect → last 200), per-stream p50/p99/max ms, client CPU.
Uses uvloop when installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import sys
import time
from collections import Counter

try:
    import uvloop
except ImportError:  # pragma: no cover - the project venv has it
    uvloop = None


class Stream(asyncio.Protocol):
    __slots__ = ("buf", "done", "request", "t0", "transport")

    def __init__(self, request: bytes, done: asyncio.Future[tuple[str, float]]) -> None:
        self.request = request
        self.done = done
        self.buf = b""
        self.t0 = time.monotonic()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return  # events and pings after the headers: read and dropped
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        status = self.buf[: self.buf.find(b"\r\n")].split(b" ", 2)
        code = status[1].decode() if len(status) > 1 else "bad"
        self.buf = b""
        self.done.set_result((code, time.monotonic()))
        if code != "200" and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result((f"closed: {exc or 'eof'}", time.monotonic()))


async def main(a: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    tokens: list[str] = a.token_list
    sem = asyncio.Semaphore(a.inflight)
    results: list[tuple[str, float, float]] = []
    transports: list[asyncio.BaseTransport] = []
    sources = [f"127.0.0.{2 + k}" for k in range(max(1, a.conns // 10000 + 2))]

    async def one(i: int) -> None:
        path = a.path.replace("{room}", f"{a.prefix}{i % a.rooms}").replace("{i}", str(i))
        auth = f"Authorization: Bearer {tokens[i // a.per_token]}\r\n" if tokens else ""
        req = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\n"
            f"Accept: text/event-stream\r\n{auth}\r\n"
        ).encode()
        async with sem:
            t0 = time.monotonic()
            done: asyncio.Future[tuple[str, float]] = loop.create_future()
            try:
                sock = socket.socket()
                sock.setblocking(False)
                sock.bind((sources[i % len(sources)], 0))
                await loop.sock_connect(sock, (a.host, a.port))
                tr, _ = await loop.create_connection(lambda: Stream(req, done), sock=sock)
                transports.append(tr)
                code, t1 = await asyncio.wait_for(done, a.timeout)
            except (OSError, TimeoutError) as exc:
                code, t1 = f"error: {type(exc).__name__}", time.monotonic()
            results.append((code, t0, t1))

    cpu0 = time.process_time()
    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(a.conns)))
    ok = [(t0, t1) for code, t0, t1 in results if code == "200"]
    failed = Counter(code for code, _, _ in results if code != "200")
    last = max((t1 for _, t1 in ok), default=start)
    print(f"READY established={len(ok)} failed={sum(failed.values())}", file=sys.stderr, flush=True)
    await asyncio.sleep(a.hold)
    cpu = time.process_time() - cpu0
    for tr in transports:
        tr.close()
    per = sorted(1000 * (t1 - t0) for t0, t1 in ok)

    def pct(q: float) -> float | None:
        return round(per[min(len(per) - 1, int(q * len(per)))], 2) if per else None

    return {
        "conns": a.conns,
        "established": len(ok),
        "failed": sum(failed.values()),
        "fail_reasons": dict(failed.most_common(5)),
        "connect_time_s": round(last - start, 3),
        "per_stream_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
        "client_cpu_s": round(cpu, 3),
    }


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True, help="template with {room} and {i}")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--rooms", type=int, default=100)
    ap.add_argument("--prefix", default="c")
    ap.add_argument("--tokens", help="file: one bearer token per line")
    ap.add_argument("--per-token", type=int, default=100, help="streams per token [100]")
    ap.add_argument("--inflight", type=int, default=256, help="pending connects at once [256]")
    ap.add_argument("--timeout", type=float, default=300, help="per-stream header timeout [300]")
    ap.add_argument("--hold", type=float, default=1.0, help="seconds to hold all open [1]")
    return ap.parse_args()


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args = parse()
    args.token_list = []
    if args.tokens:
        with open(args.tokens) as f:
            args.token_list = [line.strip() for line in f if line.strip()]
    if uvloop is not None:
        uvloop.install()
    print(json.dumps(asyncio.run(main(args))))
