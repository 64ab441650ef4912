"""``sends``: durable sends/s, and server CPU per stored send, on SQLite and PostgreSQL.

* capacity: ``P`` publisher connections (closed loop: one POST in flight each, as fast as the
  server answers) round-robin over ``rooms`` rooms, no subscribers; sends/s = messages the
  server stored (``hubbub_messages_total`` in ``/metrics``) / publishing time.
* cost: a fixed offered rate (1,000 sends/s over 16 connections, no subscribers); CPU-µs per
  stored send = server CPU (process tree, /proc utime+stime) / messages stored in the window.
  Nchan gets the same offered load on its publisher endpoint (``POST /pub/{room}``), CPU per
  accepted publish (it keeps the message in shared memory, nothing durable).

Every measurement starts a fresh server: an empty SQLite data dir, or a PostgreSQL database
created for it and dropped afterwards.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from .common import (
    CHAT_PUB,
    HUBBUB_PORT,
    NCHAN_PORT,
    NCHAN_PUB,
    BenchError,
    Json,
    Server,
    box_busy,
    busy_pct,
    hubbub_command,
    log,
    nchan_command,
    num,
    running,
    ssepub,
    stored_messages,
    workdir,
)

BEGIN, END = "<!-- run.py:sends -->", "<!-- /run.py:sends -->"


@contextlib.contextmanager
def fresh_database(kind: str, pg_base: str, n: int) -> Iterator[str | None]:
    """``None`` for SQLite (the data dir holds it); a new PostgreSQL database, dropped after."""
    if kind == "sqlite":
        yield None
        return
    name = f"hubbub_bench_{int(time.time())}_{n}"
    base = pg_base.rstrip("/")

    def psql(sql: str) -> None:
        r = subprocess.run(
            ["psql", f"{base}/postgres", "-qAtc", sql], capture_output=True, text=True, check=False
        )
        if r.returncode != 0:
            raise BenchError(f"psql {sql!r} failed: {r.stderr.strip()}")

    psql(f"CREATE DATABASE {name}")
    try:
        yield f"{base}/{name}"
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def measure(
    harness: Path,
    server: Server,
    *,
    rate: float,
    conns: int,
    rooms: int,
    duration: float,
    hubbub: bool,
) -> Json:
    stored0 = stored_messages() if hubbub else 0.0
    cpu0, busy0, t0 = server.cpu_s(), box_busy(), time.monotonic()
    pub = ssepub(
        harness,
        port=server.port,
        pub=CHAT_PUB if hubbub else NCHAN_PUB,
        rate=rate,
        duration=duration,
        conns=conns,
        rooms=rooms,
        prefix="s",
        drain=0.5,
    )
    cpu, wall = server.cpu_s() - cpu0, time.monotonic() - t0
    busy = busy_pct(busy0, box_busy())
    ok = int(pub.get("ok") or 0)
    stored = int(stored_messages() - stored0) if hubbub else ok
    pub_s = float(pub.get("duration_s") or duration)
    rtt = pub.get("response_ms") or {}
    return {
        "rate": rate,
        "conns": conns,
        "rooms": rooms,
        "accepted": ok,
        "stored": stored,
        "errors": int(pub.get("errors") or 0) + int(pub.get("non2xx") or 0),
        "sends_per_s": round(stored / pub_s, 1) if pub_s else None,
        "post_p50_ms": rtt.get("p50"),
        "post_p99_ms": rtt.get("p99"),
        "server_cpu_pct": round(100 * cpu / wall, 1) if wall else None,
        "cpu_us_per_send": round(cpu * 1e6 / stored, 1) if stored else None,
        "box_busy_pct": busy,
        "ssepub": pub["command"],
    }


def run(
    harness: Path,
    *,
    databases: list[str],
    pg_base: str,
    conns_list: list[int],
    rooms: int,
    fixed_rate: float,
    fixed_conns: int,
    duration: float,
    nchan: bool,
    keep: bool = False,
) -> Json:
    out: Json = {"databases": {}, "nchan": None, "duration": duration, "rooms": rooms}
    n = 0
    with workdir("hubbub-sends-", keep) as wd:
        for db in databases:
            rows: list[Json] = []
            shapes = [(0.0, c) for c in conns_list] + [(fixed_rate, fixed_conns)]
            for rate, conns in shapes:
                n += 1
                with fresh_database(db, pg_base, n) as url:
                    cmd = hubbub_command(str(wd / f"data{n}"), database=url)
                    with running(Server("hubbub", cmd, HUBBUB_PORT, wd)) as srv:
                        what = "max" if not rate else f"{rate:g}/s"
                        log(f"sends / {db}: {conns} connections, {what}, {duration:g} s")
                        r = measure(
                            harness,
                            srv,
                            rate=rate,
                            conns=conns,
                            rooms=rooms,
                            duration=duration,
                            hubbub=True,
                        )
                        r["log_errors"] = srv.log_errors()
                        log(
                            f"  stored {r['stored']} ({num(r['sends_per_s'])}/s), "
                            f"CPU-µs/send {num(r['cpu_us_per_send'])}"
                        )
                        rows.append(r)
                        if n == 1:
                            out["server_command"] = " ".join(cmd)
            out["databases"][db] = rows
        if nchan:
            with running(Server("nchan", nchan_command(harness), NCHAN_PORT, wd)) as srv:
                log(f"sends / nchan: {fixed_conns} connections, {fixed_rate:g}/s")
                out["nchan"] = measure(
                    harness,
                    srv,
                    rate=fixed_rate,
                    conns=fixed_conns,
                    rooms=rooms,
                    duration=duration,
                    hubbub=False,
                )
    return out


def render(res: Json, facts: Json) -> str:
    nchan = res.get("nchan")
    ref = (nchan or {}).get("cpu_us_per_send")
    lines = [
        BEGIN,
        "## Durable sends (`bench/run.py --scenarios sends`)",
        "",
        *facts_lines(facts),
        f"- server: `{res.get('server_command', '?')}` (a fresh SQLite data dir, or a fresh "
        "PostgreSQL database created for the measurement and dropped after it)",
        "",
        f"No subscribers; publishers round-robin over {num(res['rooms'])} rooms for "
        f"{num(res['duration'], 0)} s. *max*: closed loop, one POST in flight per connection, so "
        "sends/s is the server's durable send capacity at that concurrency. *fixed*: the offered "
        "rate, for the CPU cost. stored = `hubbub_messages_total` growth in `/metrics`; CPU-µs "
        "per stored send = server CPU (process tree) / stored. Nchan: same fixed load on "
        "`POST /pub/{room}` (in memory, nothing durable), CPU per accepted publish.",
        "",
        "| store | connections | offered | stored sends/s | POST p50 / p99 ms | errors "
        "| server CPU % | CPU-µs per stored send | ×Nchan | box busy % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for db, rows in res["databases"].items():
        for r in rows:
            offered = "max" if not r["rate"] else f"{num(r['rate'], 0)}/s"
            if r["rate"] and (r["sends_per_s"] or 0) < 0.95 * r["rate"]:
                offered += " (**not reached**)"
            lines.append(
                f"| {db} | {r['conns']} | {offered} "
                f"| {num(r['sends_per_s'])} | {num(r['post_p50_ms'], 2)} / "
                f"{num(r['post_p99_ms'], 2)} | {r['errors']} | {num(r['server_cpu_pct'])} "
                f"| {num(r['cpu_us_per_send'])} | {times(r['cpu_us_per_send'], ref)} "
                f"| {num(r['box_busy_pct'])} |"
            )
    if nchan:
        lines.append(
            f"| nchan (memory) | {nchan['conns']} | {num(nchan['rate'], 0)}/s "
            f"| {num(nchan['sends_per_s'])} | {num(nchan['post_p50_ms'], 2)} / "
            f"{num(nchan['post_p99_ms'], 2)} | {nchan['errors']} | {num(nchan['server_cpu_pct'])} "
            f"| {num(nchan['cpu_us_per_send'])} | 1.00× | {num(nchan['box_busy_pct'])} |"
        )
    lines.append(END)
    return "\n".join(lines)


def times(v: float | None, ref: float | None) -> str:
    return f"{v / ref:.2f}×" if v is not None and ref else "–"


def facts_lines(facts: Json) -> list[str]:
    return [
        f"- date: {facts.get('date', '?')}; machine: {facts.get('machine_line', '?')}",
        f"- Hubbub: {facts.get('git', '?')}",
        f"- command: `{facts.get('command', '?')}`",
        *([f"- note: {facts['note']}"] if facts.get("note") else []),
    ]
