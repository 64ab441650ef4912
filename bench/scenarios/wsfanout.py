"""``wsfanout``: 1 room x N WebSocket subscribers (``/chat/ws``), messages POSTed at a rate.

The subscribers are ``wsclient.py`` processes (``procs`` of them, so the client does not share
one core with itself, nor run inside the server's process); the publisher is the harness's
``bin/ssepub`` on ``POST /chat/messages`` (``T=<CLOCK_MONOTONIC ns>`` in the text). Figures:
server CPU per delivered event (process tree), p50/p99 latency (publish → frame parsed),
delivered %.
"""

from __future__ import annotations

import array
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from .common import (
    CHAT_PUB,
    HUBBUB_PORT,
    Json,
    Server,
    box_busy,
    busy_pct,
    hubbub_command,
    log,
    num,
    running,
    ssepub,
    tree_rss_mib,
    workdir,
)
from .sends import facts_lines

BEGIN, END = "<!-- run.py:wsfanout -->", "<!-- /run.py:wsfanout -->"
CLIENT = Path(__file__).with_name("wsclient.py")


class Clients:
    def __init__(self, conns: int, procs: int, duration: float, wd: Path) -> None:
        self.files = [wd / f"lat{k}.bin" for k in range(procs)]
        self.procs = []
        self.ready_lines: list[str] = []
        self.lock = threading.Lock()
        self.done = threading.Semaphore(0)
        share = [conns // procs + (1 if k < conns % procs else 0) for k in range(procs)]
        for k in range(procs):
            args = [
                sys.executable,
                str(CLIENT),
                *("--port", str(HUBBUB_PORT), "--conns", str(share[k]), "--room", "w0"),
                *("--user-prefix", f"w{k}x", "--duration", f"{duration:g}"),
                *("--latencies", str(self.files[k])),
            ]
            p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.procs.append(p)
            threading.Thread(target=self._read, args=(p,), daemon=True).start()
        self.command = " ".join(args[1:]).replace(f"--conns {share[-1]}", "--conns N")

    def _read(self, p: subprocess.Popen[str]) -> None:
        assert p.stderr is not None
        for line in p.stderr:
            if line.startswith("READY"):
                with self.lock:
                    self.ready_lines.append(line.strip())
                self.done.release()
        self.done.release()

    def wait_ready(self, timeout: float = 120) -> list[str]:
        for _ in self.procs:
            self.done.acquire(timeout=timeout)
        return self.ready_lines

    def results(self, timeout: float) -> tuple[list[Json], array.array[int]]:
        outs = []
        for p in self.procs:
            out, _ = p.communicate(timeout=timeout)
            try:
                outs.append(json.loads(out))
            except ValueError:
                outs.append({"error": "bad wsclient output", "events": 0, "established": 0})
        lat: array.array[int] = array.array("q")
        for f in self.files:
            if f.exists():
                lat.frombytes(f.read_bytes())
        return outs, lat


def run(
    harness: Path,
    *,
    subs: int,
    rate: float,
    duration: float,
    procs: int,
    pub_conns: int = 8,
    drain: float = 2.0,
    keep: bool = False,
) -> Json:
    with workdir("hubbub-wsfanout-", keep) as wd:
        cmd = hubbub_command(str(wd / "data"))
        with running(Server("hubbub", cmd, HUBBUB_PORT, wd)) as srv:
            log(f"wsfanout: {subs} WebSocket subscribers in {procs} processes")
            clients = Clients(subs, procs, duration + drain + 1.5, wd)
            ready = clients.wait_ready()
            log(f"  {'; '.join(ready) or 'no READY line'}; publishing {rate:g} msg/s")
            time.sleep(1)  # the joins' presence events drain before the window
            cpu0, busy0, t0 = srv.cpu_s(), box_busy(), time.monotonic()
            pub = ssepub(
                harness,
                port=HUBBUB_PORT,
                pub=CHAT_PUB,
                rate=rate,
                duration=duration,
                conns=pub_conns,
                prefix="w",
                drain=drain,
            )
            outs, lat = clients.results(timeout=duration + drain + 60)
            cpu, wall = srv.cpu_s() - cpu0, time.monotonic() - t0
            busy = busy_pct(busy0, box_busy())
            rss = tree_rss_mib(srv.pid)
            log_errors = srv.log_errors()
    est = sum(int(o.get("established") or 0) for o in outs)
    events = sum(int(o.get("events") or 0) for o in outs)
    ok = int(pub.get("ok") or 0)
    firsts = [o["first_event_s"] for o in outs if o.get("first_event_s")]
    lasts = [o["last_event_s"] for o in outs if o.get("last_event_s")]
    span = (max(lasts) - min(firsts)) if firsts and lasts else 0
    ordered = sorted(lat)

    def pct(q: float) -> float | None:
        if not ordered:
            return None
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000, 2)

    res: Json = {
        "subs": subs,
        "established": est,
        "procs": procs,
        "rate": rate,
        "duration": duration,
        "sent_ok": ok,
        "publish_errors": int(pub.get("errors") or 0) + int(pub.get("non2xx") or 0),
        "pub_achieved_rate": pub.get("achieved_rate"),
        "delivered": events,
        "delivered_pct": round(100 * events / (ok * est), 2) if ok and est else None,
        "delivered_per_s": round(events / span, 1) if span > 0 else None,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "server_cpu_pct": round(100 * cpu / wall, 1) if wall else None,
        "cpu_us_per_event": round(cpu * 1e6 / events, 2) if events else None,
        "client_cpu_s": round(sum(float(o.get("client_cpu_s") or 0) for o in outs), 2),
        "rss_mib": round(rss, 1),
        "box_busy_pct": busy,
        "log_errors": log_errors,
        "fail_reasons": [o.get("fail_reasons") for o in outs if o.get("failed")],
        "server_command": " ".join(cmd),
        "client_command": clients.command,
        "ssepub": pub["command"],
    }
    log(
        f"  delivered {events} ({num(res['delivered_pct'], 2)} %), "
        f"CPU-µs/event {num(res['cpu_us_per_event'], 2)}, "
        f"p50/p99 {res['p50_ms']}/{res['p99_ms']} ms"
    )
    return res


def render(r: Json, facts: Json, sse_fanout: Json | None = None) -> str:
    lines = [
        BEGIN,
        "## WebSocket fan-out (`bench/run.py --scenarios wsfanout`)",
        "",
        *facts_lines(facts),
        f"- server: `{r['server_command']}`",
        f"- subscribers: {r['procs']} × `{r['client_command']}`",
        f"- publisher: `{r['ssepub']}`",
        "",
        f"1 room × {num(r['subs'])} WebSocket subscribers (`/chat/ws`, "
        '`{"op":"subscribe"}`), '
        f"{num(r['rate'], 0)} msg/s POSTed for {num(r['duration'], 0)} s. CPU-µs per delivered "
        "event = server CPU (process tree) / marker-carrying frames received; latency = "
        "`T=<CLOCK_MONOTONIC ns>` written by ssepub → frame parsed by the client.",
        "",
        "| established | delivered/s | delivered % | p50 ms | p99 ms | max ms "
        "| CPU-µs per delivered event | server CPU % | RSS MiB | client CPU s | pub msg/s "
        "| publish errors | box busy % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {num(r['established'])} | {num(r['delivered_per_s'])} | {num(r['delivered_pct'], 2)} "
        f"| {num(r['p50_ms'], 2)} | {num(r['p99_ms'], 2)} | {num(r['max_ms'], 1)} "
        f"| {num(r['cpu_us_per_event'], 2)} | {num(r['server_cpu_pct'])} | {num(r['rss_mib'])} "
        f"| {num(r['client_cpu_s'])} | {num(r['pub_achieved_rate'], 0)} "
        f"| {r['publish_errors']} | {num(r['box_busy_pct'])} |",
    ]
    if r.get("fail_reasons"):
        lines += ["", f"Subscribers that failed: {r['fail_reasons']}"]
    if r.get("log_errors"):
        lines += ["", f"Server log: {r['log_errors']} tracebacks / ERROR lines."]
    lines.append(END)
    return "\n".join(lines)
