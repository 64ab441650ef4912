#!/usr/bin/env python3
"""What the change log costs: storage per change, and how long a client that missed 10,000
changes takes to catch up (``make bench-changelog``; results go to ``docs/performance.md``).

Starts ``hubbub serve --auth trust`` on a fresh SQLite file, sends 100 messages, remembers the
cursor a client would hold, then makes N changes over HTTP (reactions added and removed,
alternating over the 100 messages: none of them folds away, so the replay carries all N). It
reports the bytes the ``changes`` table and its index grew by (SQLite's ``dbstat``), and the
time from opening ``GET /chat/room/{id}/events`` with ``Last-Event-ID`` to the last replayed
change arriving, with the number of events received — on the room stream and on
``/chat/events``.

    python3 bench/changelog.py [--changes 10000] [--write docs/performance.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CHECKOUT = Path(__file__).resolve().parent.parent
ROOM = "bench-changes"
MARK_START = "<!-- changelog:start -->"
MARK_END = "<!-- changelog:end -->"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def table_bytes(db: Path, names: tuple[str, ...]) -> int:
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        marks = ",".join("?" for _ in names)
        row = conn.execute(
            f"SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN ({marks})", names
        ).fetchone()
        return int(row[0])
    finally:
        conn.close()


async def wait_up(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        for _ in range(200):
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit("server did not start")


async def make_changes(base: str, ids: list[str], n: int, concurrency: int = 16) -> float:
    """n reaction changes: pairs of one user adding, then removing, one emoji on a message."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for pair in range(n // 2):
        queue.put_nowait(pair)
    started = time.perf_counter()

    async def worker(w: int) -> None:
        who = {"User-ID": f"r{w}"}
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            while not queue.empty():
                pair = queue.get_nowait()
                url = f"/chat/messages/{ids[pair % len(ids)]}/reactions"
                emoji = f"e{pair % 50}"
                r = await http.post(url, headers=who, json={"reaction": emoji})
                assert r.status_code == 201, r.text
                r = await http.delete(f"{url}/{emoji}", headers=who)
                assert r.status_code == 200, r.text

    await asyncio.gather(*[worker(w) for w in range(concurrency)])
    return time.perf_counter() - started


async def replay(base: str, path: str, cursor: str, expect: int) -> tuple[float, int]:
    """Seconds from the request to the ``expect``-th replayed reaction, and how many came."""
    seen = 0
    started = time.perf_counter()
    async with (
        httpx.AsyncClient(base_url=base, timeout=120) as http,
        http.stream(
            "GET", path, headers={"User-ID": "reader", "Last-Event-ID": cursor}
        ) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line == "event: reaction":
                seen += 1
                if seen >= expect:
                    break
    return time.perf_counter() - started, seen


def serve(data: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HUBBUB_RATE_LIMIT_PER_SECOND": "0", "HUBBUB_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "hubbub", "serve", "--auth", "trust", "--port", str(port)]
    return subprocess.Popen([*command, "--data-dir", str(data)], env=env)


async def run(n: int) -> dict[str, float]:
    data = Path(tempfile.mkdtemp(prefix="hubbub-changelog-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(data, port)
    try:
        await wait_up(base)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            r = await http.post(f"/chat/room/{ROOM}/join", headers={"User-ID": "reader"})
            assert r.status_code == 200, r.text
            ids = []
            for i in range(100):
                r = await http.post(
                    "/chat/messages",
                    headers={"User-ID": "writer"},
                    json={"room_id": ROOM, "message": f"message {i}"},
                )
                ids.append(r.json()["message"]["id"])
            events = await http.get(
                "/chat/room/" + ROOM + "/poll",
                params={"changes": 1, "after": 0, "timeout": 0, "limit": 200},
                headers={"User-ID": "reader"},
            )
            room_cursor = events.json()["next"]
        db = data / "hubbub.db"
        before = table_bytes(db, ("changes", "ix_changes_room_rev"))
        # The /chat/events cursor a client would hold now: its `connected` id.
        async with (
            httpx.AsyncClient(base_url=base, timeout=30) as http,
            http.stream("GET", "/chat/events", headers={"User-ID": "reader"}) as response,
        ):
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    all_cursor = line[4:]
                    break
        took = await make_changes(base, ids, n)
        after = table_bytes(db, ("changes", "ix_changes_room_rev"))
        room_s, room_seen = await replay(base, f"/chat/room/{ROOM}/events", room_cursor, n)
        all_s, all_seen = await replay(base, "/chat/events", all_cursor, n)
        return {
            "changes": n,
            "changes_per_s": n / took,
            "bytes_per_change": (after - before) / n,
            "room_replay_s": room_s,
            "room_events": room_seen,
            "all_replay_s": all_s,
            "all_events": all_seen,
        }
    finally:
        proc.terminate()
        proc.wait(20)


def render(result: dict[str, float], command: str) -> str:
    commit = subprocess.run(
        ["git", "-C", str(CHECKOUT), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    n = int(result["changes"])
    return "\n".join(
        [
            MARK_START,
            "## The change log: storage and catch-up (bench/changelog.py)",
            "",
            f"- date: {now}; machine: {os.cpu_count()} CPU, Python {platform.python_version()}"
            f", load average before: {os.getloadavg()[0]:.2f}",
            f"- Hubbub: `{commit}`",
            f"- command: `{command}`",
            f"- workload: 100 messages, then {n:,} reaction changes (added and removed, "
            "alternating; none folds away) over HTTP, 16 connections, SQLite "
            "`synchronous=FULL`",
            "",
            "| figure | value |",
            "|---|---|",
            f"| storage per change (`changes` table + its index, SQLite `dbstat`) | "
            f"{result['bytes_per_change']:.0f} bytes |",
            f"| changes stored per second (one transaction each) | "
            f"{result['changes_per_s']:,.0f} |",
            f"| replay of {n:,} missed changes, room stream (`Last-Event-ID: <seq>`) | "
            f"{result['room_replay_s'] * 1000:,.0f} ms ({int(result['room_events']):,} events) |",
            f"| replay of {n:,} missed changes, `/chat/events` (`Last-Event-ID: g…`) | "
            f"{result['all_replay_s'] * 1000:,.0f} ms ({int(result['all_events']):,} events) |",
            MARK_END,
        ]
    )


def write(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(MARK_START) + ".*?" + re.escape(MARK_END), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--changes", type=int, default=10_000)
    ap.add_argument("--write", type=Path, help="update this markdown file")
    args = ap.parse_args()
    result = asyncio.run(run(args.changes))
    section = render(result, "python3 bench/changelog.py " + " ".join(sys.argv[1:]))
    print(section)
    if args.write:
        write(args.write, section)


if __name__ == "__main__":
    main()
