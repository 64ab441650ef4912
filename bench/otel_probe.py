#!/usr/bin/env python3
"""Server CPU per send with and without ``--otel-endpoint`` (docs/deployment.md, Tracing).

For each setting a fresh ``hubbub serve --auth trust --rate-limit-per-second 0`` (SQLite in a
temporary data dir) takes ``--sends`` POSTs from ``--conns`` keep-alive connections, closed loop,
round-robin over ``--rooms`` rooms, each with one SSE subscriber (so the fan-out and its
``deliver`` span run too). Reported: the server process's CPU (utime+stime from
``/proc/<pid>/stat``, the exporter's thread included) per send. Settings:

* ``off``: no flag (the extra installed);
* ``no-extra``: no flag, the OpenTelemetry SDK and exporter hidden (as without the extra);
* ``otel``: ``--otel-endpoint`` to an OTLP/HTTP receiver in this process that answers 200.

    .venv/bin/python bench/otel_probe.py --sends 4000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


class Receiver(BaseHTTPRequestHandler):
    spans_bytes = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Receiver.spans_bytes += len(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def shadow_dir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="no-otel-"))
    for part in ("sdk", "exporter"):
        package = root / "opentelemetry" / part
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("raise ImportError('hidden')\n")
    return root


async def drive(port: int, sends: int, conns: int, rooms: int) -> float:
    """Subscribers first, then ``sends`` POSTs; the wall time of the sends."""
    subscribers = []
    for r in range(rooms):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /chat/room/r{r}/events HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nUser-ID: sub{r}\r\n\r\n".encode()
        )
        await writer.drain()
        subscribers.append((reader, writer))

    async def drain(reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass

    readers = [asyncio.create_task(drain(r)) for r, _ in subscribers]
    await asyncio.sleep(0.5)
    counter = iter(range(sends))

    async def one_conn(c: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for n in counter:
            body = json.dumps({"room_id": f"r{n % rooms}", "message": f"m{n}"}).encode()
            writer.write(
                b"POST /chat/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-ID: u%d\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (c, len(body), body)
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 201"), head
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(one_conn(c) for c in range(conns)))
    took = time.monotonic() - started
    for t in readers:
        t.cancel()
    for _, w in subscribers:
        w.close()
    return took


def one_run(setting: str, args: argparse.Namespace, otlp_url: str) -> dict[str, Any]:
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="hubbub-otel-"))
    cmd = [
        str(CHECKOUT / ".venv" / "bin" / "hubbub"),
        *f"serve --host 127.0.0.1 --port {port} --auth trust --rate-limit-per-second 0".split(),
        *("--data-dir", str(work / "data")),
    ]
    env = dict(os.environ)
    if setting == "otel":
        cmd += ["--otel-endpoint", otlp_url]
    elif setting == "no-extra":
        env["PYTHONPATH"] = str(shadow_dir())
    log = open(work / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        end = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > end or proc.poll() is not None:
                    raise SystemExit(
                        f"server did not start: {(work / 'server.log').read_text()}"
                    ) from None
                time.sleep(0.2)
        asyncio.run(drive(port, args.warmup, args.conns, args.rooms))
        before = cpu_seconds(proc.pid)
        took = asyncio.run(drive(port, args.sends, args.conns, args.rooms))
        time.sleep(1.0)  # let the exporter send what is queued (its CPU counts)
        cpu = cpu_seconds(proc.pid) - before
    finally:
        proc.terminate()
        proc.wait(20)
    return {
        "setting": setting,
        "sends": args.sends,
        "sends_per_s": round(args.sends / took),
        "cpu_us_per_send": round(cpu / args.sends * 1e6, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sends", type=int, default=4000)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--rooms", type=int, default=20)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--settings", default="off,no-extra,otel")
    args = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    otlp_url = f"http://127.0.0.1:{server.server_address[1]}"
    for _ in range(args.repeat):
        for setting in args.settings.split(","):
            print(json.dumps(one_run(setting, args, otlp_url)), flush=True)
    print(json.dumps({"otlp_bytes_received": Receiver.spans_bytes}), file=sys.stderr)


if __name__ == "__main__":
    main()
