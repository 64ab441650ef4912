"""N WebSocket subscribers of one Hubbub room; counts deliveries and their latency.

A load client for the ``wsfanout`` scenario, run in its own process (one or more):

    python bench/scenarios/wsclient.py --port 8090 --conns 500 --room w0 --duration 12 \
        --user-prefix a --latencies /tmp/lat.bin

Each connection: ``GET /chat/ws?user_id=<prefix><i>`` (trust mode), then
``{"op":"subscribe","room_id":ROOM}``. A raw-socket client (asyncio Protocol, uvloop when
installed) with a minimal RFC 6455 frame parser: server frames are unmasked; pings are answered
with a masked pong. A delivery is a text frame whose payload holds a ``T=<CLOCK_MONOTONIC ns>``
marker (ssepub writes it into the message text); its latency is now - T, taken once per read.
Prints ``READY established=.. failed=..`` on stderr when every socket has its ``subscribed``
frame (or failed), measures ``--duration`` seconds, then prints one JSON object on stdout;
``--latencies`` gets every latency in µs as native int64 (array('q')).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import json
import os
import re
import resource
import struct
import sys
import time

try:
    import uvloop
except ImportError:  # pragma: no cover - the project venv has it
    uvloop = None

MARKER = re.compile(rb"T=(\d{6,20})")
MONO = time.CLOCK_MONOTONIC


class Counts:
    def __init__(self) -> None:
        self.events = 0
        self.frames = 0
        self.first = 0.0
        self.last = 0.0
        self.lat = array.array("q")
        self.subscribed = 0


class WsClient(asyncio.Protocol):
    __slots__ = ("buf", "counts", "handshake", "ready", "room", "transport", "upgraded")

    def __init__(self, counts: Counts, room: str, ready: asyncio.Future[str]) -> None:
        self.counts = counts
        self.room = room
        self.ready = ready
        self.buf = bytearray()
        self.upgraded = False
        self.handshake = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        assert self.transport is not None
        self.transport.write(head + mask + masked)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            if b" 101 " not in status:
                self.fail(status.decode(errors="replace"))
                return
            self.upgraded = True
            msg = json.dumps({"op": "subscribe", "room_id": self.room, "ref": 1})
            self.send_frame(1, msg.encode())
        now = 0
        pos = 0
        n = len(buf)
        counts = self.counts
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            hdr = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = struct.unpack_from("!H", buf, pos + 2)[0]
                hdr = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                hdr = 10
            if n - pos < hdr + length:
                break
            payload = bytes(buf[pos + hdr : pos + hdr + length])
            pos += hdr + length
            opcode = b0 & 0x0F
            counts.frames += 1
            if opcode == 1:
                m = MARKER.search(payload)
                if m:
                    if not now:
                        now = time.clock_gettime_ns(MONO)
                        if not counts.first:
                            counts.first = time.monotonic()
                        counts.last = time.monotonic()
                    counts.events += 1
                    counts.lat.append((now - int(m.group(1))) // 1000)
                elif not self.ready.done() and b'"subscribed"' in payload:
                    counts.subscribed += 1
                    self.ready.set_result("ok")
            elif opcode == 9:
                self.send_frame(10, payload)
            elif opcode == 8:
                self.fail("closed by server")
        del buf[:pos]

    def fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_result(why)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_result(f"closed: {exc or 'eof'}")


async def main(a: argparse.Namespace) -> tuple[array.array[int], dict[str, object]]:
    loop = asyncio.get_running_loop()
    counts = Counts()
    sem = asyncio.Semaphore(128)
    outcomes: list[str] = []
    transports: list[asyncio.BaseTransport] = []

    async def one(i: int) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        req = (
            f"GET /chat/ws?user_id={a.user_prefix}{i} HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        ready: asyncio.Future[str] = loop.create_future()
        async with sem:
            try:
                tr, _ = await loop.create_connection(
                    lambda: WsClient(counts, a.room, ready), a.host, a.port
                )
                transports.append(tr)
                tr.write(req)  # type: ignore[attr-defined]
                outcomes.append(await asyncio.wait_for(ready, 60))
            except (OSError, TimeoutError) as exc:
                outcomes.append(f"error: {type(exc).__name__}")

    await asyncio.gather(*(one(i) for i in range(a.conns)))
    ok = outcomes.count("ok")
    print(f"READY established={ok} failed={len(outcomes) - ok}", file=sys.stderr, flush=True)
    counts.events, counts.lat, counts.first, counts.last = 0, array.array("q"), 0.0, 0.0
    cpu0 = time.process_time()
    await asyncio.sleep(a.duration)
    cpu = time.process_time() - cpu0
    for tr in transports:
        tr.close()
    reasons: dict[str, int] = {}
    for o in outcomes:
        if o != "ok":
            reasons[o] = reasons.get(o, 0) + 1
    return counts.lat, {
        "conns": a.conns,
        "established": ok,
        "failed": len(outcomes) - ok,
        "fail_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:5]),
        "events": counts.events,
        "first_event_s": counts.first,
        "last_event_s": counts.last,
        "client_cpu_s": round(cpu, 3),
    }


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--conns", type=int, default=500)
    ap.add_argument("--room", default="w0")
    ap.add_argument("--user-prefix", default="w")
    ap.add_argument("--duration", type=float, default=10, help="seconds measured after READY")
    ap.add_argument("--latencies", help="write every latency (µs, int64) to this file")
    return ap.parse_args()


if __name__ == "__main__":
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args = parse()
    if uvloop is not None:
        uvloop.install()
    lat, out = asyncio.run(main(args))
    if args.latencies:
        with open(args.latencies, "wb") as f:
            lat.tofile(f)
    print(json.dumps(out))
