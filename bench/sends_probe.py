#!/usr/bin/env python3
"""CPU per stored send (python3 stdlib only): the send path's own probe.

Starts ``hubbub serve --auth trust --rate-limit-per-second 0`` on a free port with a fresh
data dir, drives ``POST /chat/messages`` with the shared harness's ``bin/ssepub`` (no
subscribers), and reports the server's CPU time (utime+stime from ``/proc/<pid>/stat``) per
message stored (the rooms' ``last_seq`` summed, read from the database afterwards), plus the
accepted sends/s. Several runs per setting (``--repeat``): contention from other processes on
the machine moves rates a lot, CPU per op much less.

    python3 bench/sends_probe.py --rate 1000 --conns 16 --rooms 1000 --duration 10
    python3 bench/sends_probe.py --rate 0 --conns 64 --rooms 1000 --duration 10   # max rate
    python3 bench/sends_probe.py ... --py-spy /tmp/send.svg   # also profile the server
    python3 bench/sends_probe.py ... --database postgresql+asyncpg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parent.parent
SSEPUB = CHECKOUT.parent / "shared" / "bench" / "bin" / "ssepub"
BODY = '{"room_id": "{room}", "message": "{text}"}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int) -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds per thread: the main thread as "main", the others by id."""
    out: dict[str, tuple[float, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = "main" if task.name == str(pid) else task.name
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user, system = out.get(name, (0.0, 0.0))
        out[name] = (user + int(fields[11]) / tick, system + int(fields[12]) / tick)
    return out


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit("server exited")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server not ready")


def stored_sqlite(data: Path) -> int:
    with sqlite3.connect(data / "hubbub.db") as c:
        return int(c.execute("SELECT COALESCE(SUM(last_seq), 0) FROM rooms").fetchone()[0])


def stored_pg(url: str) -> int:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    out = subprocess.run(
        ["psql", dsn, "-tAc", "SELECT COALESCE(SUM(last_seq), 0) FROM rooms"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


PROBE_DB = "hubbub_sends_probe"


def probe_db_url(url: str) -> str:
    """The probe's own database on the server ``url`` names (never the one it names)."""
    return url.rsplit("/", 1)[0] + "/" + PROBE_DB


def reset_pg(url: str) -> None:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    for sql in (f"DROP DATABASE IF EXISTS {PROBE_DB} WITH (FORCE)", f"CREATE DATABASE {PROBE_DB}"):
        subprocess.run(["psql", dsn, "-qc", sql], capture_output=True, check=True)


def one_run(args: argparse.Namespace, n: int) -> dict[str, Any]:
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="hubbub-sends-"))
    data = work / "data"
    hubbub = CHECKOUT / ".venv" / "bin" / "hubbub"
    cmd = [
        str(hubbub),
        *f"serve --host 127.0.0.1 --port {port} --auth trust --rate-limit-per-second 0".split(),
        "--data-dir",
        str(data),
        *args.serve_arg,
    ]
    env = dict(os.environ)
    database = probe_db_url(args.database) if args.database else None
    if args.database:
        reset_pg(args.database)
        env["HUBBUB_DATABASE"] = database
    log = open(work / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    spy: subprocess.Popen[bytes] | None = None
    try:
        wait_ready(port, proc)
        pub = [
            str(SSEPUB),
            *("-h", "127.0.0.1", "-p", str(port), "-X", "POST", "-u", "/chat/messages"),
            *("-b", BODY, "-T", "application/json", "-H", "User-ID: pub{conn}"),
            *("-r", str(args.rooms), "-x", "q", "-m", str(args.rate)),
            *("-d", str(args.duration), "-n", str(args.conns)),
        ]
        if args.warmup:  # first use of rooms/users (trust mode) out of the measured window
            warm = list(pub)
            warm[warm.index("-d") + 1] = str(args.warmup)
            subprocess.run(warm, capture_output=True, check=False)
        before_stored = stored_pg(database) if database else stored_sqlite(data)
        if args.py_spy and n == 0:
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "-p",
                    str(proc.pid),
                    "-o",
                    args.py_spy,
                    "-d",
                    str(int(args.duration)),
                    "-r",
                    "200",
                    *(["-f", "raw"] if args.py_spy.endswith(".txt") else []),
                    *(["--threads"] if args.threads else []),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        c0 = cpu_s(proc.pid)
        t0s = thread_cpu_s(proc.pid)
        t0 = time.monotonic()
        r = subprocess.run(pub, capture_output=True, text=True, check=False)
        wall = time.monotonic() - t0
        cpu = cpu_s(proc.pid) - c0
        t1s = thread_cpu_s(proc.pid)
        if spy is not None:
            spy.wait(timeout=60)
        stored = (stored_pg(database) if database else stored_sqlite(data)) - (before_stored)
        try:
            res = json.loads(r.stdout)
        except ValueError:
            res = {"error": r.stdout[-500:] + r.stderr[-500:]}
        dur = float(res.get("duration_s") or args.duration)
        return {
            "stored": stored,
            "ok": res.get("ok"),
            "errors": {k: v for k, v in res.items() if "err" in k or "fail" in k},
            "sends_per_s": round(stored / dur),
            "cpu_s": round(cpu, 3),
            "cpu_us_per_send": round(cpu * 1e6 / stored, 1) if stored else None,
            "cpu_pct": round(100 * cpu / wall, 1),
            "threads_us_per_send": {  # [user+system, system]
                k: [
                    round((u + s - sum(t0s.get(k, (0.0, 0.0)))) * 1e6 / stored, 1),
                    round((s - t0s.get(k, (0.0, 0.0))[1]) * 1e6 / stored, 1),
                ]
                for k, (u, s) in t1s.items()
                if stored and u + s - sum(t0s.get(k, (0.0, 0.0))) > 0.05
            },
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rate", type=int, default=1000, help="sends/s in total (0 = max)")
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--rooms", type=int, default=1000)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--warmup", type=float, default=0, help="seconds of sending first, unmeasured")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument(
        "--database",
        help="a PostgreSQL server URL; the probe uses its own database there, "
        f"{PROBE_DB} (default: SQLite in the data dir)",
    )
    p.add_argument("--serve-arg", action="append", default=[], help="one more serve argument")
    p.add_argument("--py-spy", help="profile the first run into this file (.svg or .txt)")
    p.add_argument("--threads", action="store_true", help="py-spy: per thread")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    for n in range(args.repeat):
        print(json.dumps(one_run(args, n)), flush=True)


if __name__ == "__main__":
    main()
