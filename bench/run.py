#!/usr/bin/env python3
"""Hubbub's benchmark entry point (``make bench``); python3 stdlib (the chart: matplotlib).

Three modes:

* full (default): run the shared harness ``<checkout>/../shared/bench/bench.py`` against Hubbub
  and Nchan for its scenarios (fanout1k, rooms, idle, saturation), read the raw JSON it writes
  (``<harness>/results/<run-id>.json``) and render the comparison, with the project's goals, and
  the p99-vs-load chart, into ``docs/performance.md`` (``--write``); then this tool's own
  scenarios (``bench/scenarios/``): ``sends`` (durable sends/s, CPU per stored send, SQLite and
  PostgreSQL), ``connect`` (time to open 19,000 streams, trust and jwt) and ``wsfanout``
  (WebSocket fan-out). A whole run also records ``bench/baseline.json`` for the gate.
* ``--quick``: no Nchan needed. Start Hubbub alone, 100 SSE subscribers in one room
  (``bin/sseload``), ``bin/ssepub`` at max rate with 16 connections for 10 s; report messages/s
  accepted, deliveries/s and latency (section "Quick figure").
* ``--gate``: CI's regression gate (``bench/scenarios/gate.py``): exit 1 when Hubbub's CPU per
  delivered event relative to Nchan's is > 30 % above ``bench/baseline.json``'s.

Each part rewrites only its own section of the document, so parts can be run separately.
Arguments after a literal ``--`` are passed to bench.py unchanged (e.g. ``-- --idle-window 15``).

    python3 bench/run.py --quick --write docs/performance.md
    python3 bench/run.py --duration 10 --scenarios fanout1k,rooms,idle --write docs/performance.md
    python3 bench/run.py --scenarios sends,connect,wsfanout --duration 5 --write docs/performance.md
    python3 bench/run.py --from-json ../shared/bench/results/<id>.json --write docs/performance.md
    python3 bench/run.py --gate
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from scenarios import broker, chart, connect, gate, sends, wsfanout
from scenarios.common import BenchError, ReadyProcess, flags, hubbub_exe, log, num, port_in_use
from scenarios.report import (
    git_state,
    hubbub_env,
    machine,
    machine_line,
    now_utc,
    render_full,
    saved_facts,
    scan_log,
    this_command,
)

CHECKOUT = Path(__file__).resolve().parent.parent
DEFAULT_HARNESS = CHECKOUT.parent / "shared" / "bench"

APT_PACKAGES = ("nginx-light", "libnginx-mod-nchan")
APT_COMMAND = "apt-get update && apt-get install -y " + " ".join(APT_PACKAGES)
# What peers/nchan/start.sh and its nginx.conf.tmpl actually use.
NCHAN_FILES = (Path("/usr/sbin/nginx"), Path("/usr/lib/nginx/modules/ngx_nchan_module.so"))
NCHAN_TARGETS = {"nchan", "nchan2"}
TARGET_PORTS = {"hubbub": 8090, "nchan": 8091, "nchan2": 8091, "naive": 8092, "node": 8093}

HOST = "127.0.0.1"
PORT = 8090
SUB_PATH = "/chat/room/{room}/events?user_id=u{i}"
PUB_PATH = "/chat/messages"
PUB_BODY = '{"room_id": "{room}", "message": "{text}"}'
PUB_HEADER = "User-ID: pub{conn}"
QUICK_BEGIN, QUICK_END = "<!-- run.py:quick -->", "<!-- /run.py:quick -->"


Json = dict[str, Any]


# ------------------------------------------------------------------------------ prerequisites


def missing_nchan() -> list[str]:
    """The Debian packages Nchan needs that are not installed (empty when all is there)."""
    if all(p.exists() for p in NCHAN_FILES):
        return []
    missing = []
    for pkg in APT_PACKAGES:
        try:
            r = subprocess.run(
                ["dpkg-query", "-W", "-f=${Status}", pkg],
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError:
            return list(APT_PACKAGES)
        if r.returncode != 0 or "install ok installed" not in r.stdout:
            missing.append(pkg)
    return missing or list(APT_PACKAGES)  # files absent although dpkg says installed


def install_nchan() -> None:
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise BenchError(f"installing needs root; run as root: {APT_COMMAND}")
        prefix = ["sudo"]
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", *APT_PACKAGES]):
        log("running", shlex.join(prefix + cmd))
        subprocess.run(prefix + cmd, check=True)


def ensure_nchan(install: bool) -> None:
    missing = missing_nchan()
    if not missing:
        return
    if not install:
        raise BenchError(
            f"Nchan is not installed (missing: {', '.join(missing)}). Install it with\n"
            f"    {APT_COMMAND}\n"
            "or run bench/run.py --install (or: make bench ARGS=--install)."
        )
    install_nchan()
    if missing_nchan():
        raise BenchError(f"still missing after installing: {', '.join(missing_nchan())}")


def build_harness(harness: Path) -> None:
    """``make -C <harness>``: builds bin/sseload and bin/ssepub (a no-op when up to date)."""
    for tool in ("make", "gcc"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is needed to build the load tools: apt-get install -y {tool}")
    subprocess.run(["make", "-s", "-C", str(harness)], check=True)


def ensure_ports_free(ports: Sequence[int]) -> None:
    busy = sorted({p for p in ports if port_in_use(p)})
    if busy:
        raise BenchError(
            f"port(s) {', '.join(map(str, busy))} already in use: stop whatever listens there "
            "(the harness refuses to measure a server it did not start)"
        )


# ------------------------------------------------------------------------------ facts


# ------------------------------------------------------------------------------ quick mode


def proc_cpu_s(pid: int) -> float:
    """utime+stime (and reaped children) of one process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_http(port: int, proc: subprocess.Popen[bytes], timeout: float = 40) -> None:
    """Ready = any HTTP answer to ``GET /`` (404 is fine), like the harness."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"hubbub exited with {proc.returncode} before it was ready")
        with socket.socket() as s:
            s.settimeout(1.0)
            try:
                s.connect((HOST, port))
                s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                if s.recv(16).startswith(b"HTTP/"):
                    return
            except OSError:
                pass
        time.sleep(0.2)
    raise BenchError(f"hubbub did not answer on port {port} within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        log(f"hubbub (pid {proc.pid}) ignored SIGTERM for 15 s; killing it")
        proc.kill()
        proc.wait(timeout=5)


def serve_command(data_dir: str) -> list[str]:
    """Trust mode on the harness port; the per-user rate limiter off (see the document)."""
    return [
        hubbub_exe(),
        *f"serve --host {HOST} --port {PORT} --auth trust --rate-limit-per-second 0".split(),
        "--data-dir",
        data_dir,
    ]


@contextlib.contextmanager
def hubbub_server(
    cmd: list[str], workdir: Path, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log_path, "ab") as logf:
        log("starting", shlex.join(cmd))
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_http(PORT, proc)
            yield proc
        finally:
            stop_server(proc)


def quick(
    harness: Path, subs: int, duration: float, pub_conns: int, drain: float, keep: bool
) -> Json:
    """One room, ``subs`` subscribers, publisher at max rate; Hubbub only."""
    ensure_ports_free([PORT])
    build_harness(harness)
    bin_dir = harness / "bin"
    workdir = Path(tempfile.mkdtemp(prefix="hubbub-quick-"))
    log_path = workdir / "server.log"
    info: Json = {
        "date": now_utc(),
        "machine": machine(),
        "command": this_command(),
        "git": git_state(),
    }
    try:
        cmd = serve_command(str(workdir / "data"))
        info["server_command"] = shlex.join(cmd)
        with hubbub_server(cmd, workdir, log_path) as server:
            sub_args = [
                str(bin_dir / "sseload"),
                *flags(h=HOST, p=PORT, u=SUB_PATH, c=subs, r=1, x="q", t=30),
                *flags(d=f"{duration + drain + 0.5:g}"),
            ]
            pub_args = [
                str(bin_dir / "ssepub"),
                *flags(h=HOST, p=PORT, X="POST", u=PUB_PATH, b=PUB_BODY, T="application/json"),
                *flags(H=PUB_HEADER, r=1, x="q", m=0, d=f"{duration:g}", n=pub_conns),
                *flags(D=f"{drain:g}"),
            ]
            info["sseload_command"] = shlex.join(sub_args)
            info["ssepub_command"] = shlex.join(pub_args)
            load = ReadyProcess(sub_args, timeout=30 + duration + drain + 30)
            info["ready"] = load.wait_ready()
            log(f"subscribers: {info['ready'] or 'no READY line'}")
            cpu0 = proc_cpu_s(server.pid)
            t0 = time.monotonic()
            log(f"publishing at max rate for {duration:g} s with {pub_conns} connections")
            r = subprocess.run(
                pub_args,
                capture_output=True,
                text=True,
                timeout=duration + drain + 30,
                check=False,
            )
            sub = load.result()
            wall = time.monotonic() - t0
            cpu = proc_cpu_s(server.pid) - cpu0
            info["rss_mib"] = round(proc_rss_mib(server.pid), 1)
            try:
                pub: Json = json.loads(r.stdout)
            except ValueError:
                pub = {"error": "bad ssepub output", "stderr": r.stderr[-2000:]}
            info["server_alive"] = server.poll() is None
        info["server_exit"] = server.returncode
    finally:
        problems = scan_log(log_path)
        died = info.get("server_alive") is False
        if problems["tracebacks"] or problems["errors"] or died:
            kept = Path(tempfile.mkdtemp(prefix="hubbub-quick-log-")) / "server.log"
            shutil.copy(log_path, kept)
            problems["path"] = str(kept)
            log(f"server log has errors or the server died; kept at {kept}")
        info["server_log"] = problems
        if keep:
            log(f"kept {workdir} (server.log, data/)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    info["pub"] = pub
    info["sub"] = {k: v for k, v in sub.items() if k != "series"}
    est = int(sub.get("established") or 0)
    events = int(sub.get("events") or 0)
    ok = int(pub.get("ok") or 0)
    pub_s = float(pub.get("duration_s") or duration)
    span = float(sub.get("last_event_s") or 0) - float(sub.get("first_event_s") or 0)
    lat = sub.get("latency_ms") or {}
    rtt = pub.get("response_ms") or {}
    info["result"] = {
        "subscribers": subs,
        "established": est,
        "pub_conns": pub_conns,
        "duration_s": duration,
        "accepted": ok,
        "accepted_per_s": round(ok / pub_s, 1) if pub_s else None,
        "non2xx": pub.get("non2xx"),
        "pub_errors": pub.get("errors"),
        "delivered": events,
        "expected": ok * est,
        "delivered_pct": round(100 * events / (ok * est), 2) if ok and est else None,
        "deliveries_per_s": round(events / span, 1) if span > 0 else None,
        "p50_ms": lat.get("p50"),
        "p99_ms": lat.get("p99"),
        "post_p50_ms": rtt.get("p50"),
        "post_p99_ms": rtt.get("p99"),
        "server_cpu_pct": round(100 * cpu / wall, 1) if wall else None,
        "cpu_us_per_delivery": round(cpu * 1e6 / events, 2) if events else None,
    }
    return info


# ------------------------------------------------------------------------------ full mode


def run_harness(
    harness: Path,
    targets: list[str],
    scenarios: str,
    duration: float,
    tag: str,
    extra: list[str],
) -> tuple[Path, Json]:
    """Run bench.py; returns the path of the raw JSON it wrote, and the facts of the run."""
    bench_py = harness / "bench.py"
    if not bench_py.exists():
        raise BenchError(f"no harness at {harness} (expected {bench_py})")
    ensure_ports_free([TARGET_PORTS[t] for t in targets if t in TARGET_PORTS])
    build_harness(harness)
    results = harness / "results"
    before = set(results.glob("*.json")) if results.is_dir() else set()
    datadirs = Path(tempfile.mkdtemp(prefix="hubbub-bench-"))
    # A fresh data dir (empty SQLite) per scenario: start.sh runs this through `bash -c`.
    hubbub_cmd = shlex.join(serve_command("DATA")).replace(
        "DATA", f'"$(mktemp -d -p {shlex.quote(str(datadirs))} data.XXXXXX)"'
    )
    env = dict(os.environ, HUBBUB_CHECKOUT=str(CHECKOUT), HUBBUB_CMD=hubbub_cmd)
    cmd = [
        sys.executable,
        str(bench_py),
        "--targets",
        ",".join(targets),
        "--scenarios",
        scenarios,
        "--duration",
        f"{duration:g}",
    ]
    if tag:
        cmd += ["--tag", tag]
    cmd += extra
    facts: Json = {
        "command": this_command(),
        "harness_command": (
            f"HUBBUB_CHECKOUT={shlex.quote(str(CHECKOUT))} "
            f"HUBBUB_CMD={shlex.quote(hubbub_cmd)} {shlex.join(cmd)}"
        ),
        "hubbub_env": hubbub_env(),
        "machine": machine(),
        "git": git_state(),
        "started": now_utc(),
    }
    log("running", facts["harness_command"])
    wrote: Path | None = None
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(
            cmd, cwd=harness.parent, env=env, stderr=subprocess.PIPE, stdout=sys.stderr, text=True
        )
        assert proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.write(line)
            m = re.search(r"wrote (\S+\.json)", line)
            if m:
                wrote = Path(m.group(1))
        rc = proc.wait()
    finally:
        shutil.rmtree(datadirs, ignore_errors=True)
    facts["elapsed_s"] = round(time.monotonic() - t0, 1)
    if rc != 0:
        raise BenchError(f"bench.py failed with exit code {rc}")
    if wrote is None:
        new = sorted(set(results.glob("*.json")) - before, key=lambda p: p.stat().st_mtime)
        if not new:
            raise BenchError(f"bench.py wrote no result file in {results}")
        wrote = new[-1]
    return wrote, facts


# ------------------------------------------------------------------------------ rendering


def render_quick(info: Json) -> str:
    r: Json = info["result"]
    lines = [
        QUICK_BEGIN,
        "## Quick figure (`bench/run.py --quick`, no Nchan)",
        "",
        f"- date: {info['date']}",
        f"- machine: {machine_line(info['machine'])}",
        f"- Hubbub: {info.get('git', '?')}",
        f"- command: `{info['command']}`",
        *([f"- note: {info['note']}"] if info.get("note") else []),
        f"- server: `{info.get('server_command', '?')}` (fresh temporary data dir; per-user "
        "rate limiter off with `--rate-limit-per-second 0` so the 16 publisher users "
        "`pub{conn}` are not answered 429)",
        f"- subscribers: `{info.get('sseload_command', '?')}`",
        f"- publisher: `{info.get('ssepub_command', '?')}`",
        "",
        f"{r['established']} of {r['subscribers']} SSE subscribers in one room; the publisher "
        f"keeps one POST in flight on each of {r['pub_conns']} connections for "
        f"{num(r['duration_s'], 0)} s (closed loop, so accepted/s is bounded by POST latency).",
        "",
        "| messages/s accepted | deliveries/s | delivered % | p50 ms | p99 ms "
        "| POST p50 / p99 ms | non-2xx / errors | server CPU % | CPU-µs per delivery |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {num(r['accepted_per_s'])} | {num(r['deliveries_per_s'])} "
        f"| {num(r['delivered_pct'], 2)} | {num(r['p50_ms'], 2)} | {num(r['p99_ms'], 2)} "
        f"| {num(r['post_p50_ms'], 2)} / {num(r['post_p99_ms'], 2)} "
        f"| {num(r['non2xx'])} / {num(r['pub_errors'])} | {num(r['server_cpu_pct'])} "
        f"| {num(r['cpu_us_per_delivery'], 2)} |",
        "",
        f"Server RSS after the run: {num(info.get('rss_mib'))} MiB; "
        f"{'alive until stopped' if info.get('server_alive') else 'EXITED DURING THE RUN'}, "
        f"exit status {num(info.get('server_exit'))}. "
        f"Server log: {info['server_log']['tracebacks']} tracebacks, "
        f"{info['server_log']['errors']} ERROR lines, "
        f"{info['server_log']['slow_cutoffs']} slow-client cut-offs.",
    ]
    if info["server_log"]["excerpt"]:
        lines += ["", "```", *info["server_log"]["excerpt"][:20], "```"]
    lines.append(QUICK_END)
    return "\n".join(lines)


HEADER = """\
# Hubbub performance

Written by `make bench` (`bench/run.py`, see `bench/README.md`) with the shared harness
`../shared/bench` (Hubbub vs Nchan, the C reference inside nginx). Each section below is
rewritten by its own part of the run and kept otherwise, so parts can be re-run alone
(`make bench ARGS="--scenarios sends"`):

- **Hubbub vs Nchan**: bench.py's `fanout1k`, `rooms`, `idle`, `saturation` (CPU-µs per
  delivered SSE event and ×Nchan, latency, KiB per idle stream, max sustained deliveries/s).
- **Latency vs offered load**: a chart of the saturation ladder, p99 per step, Hubbub beside
  Nchan (`performance-latency.png`), drawn from the same run.
- **Durable sends** (`sends`): stored sends/s with 16 and 64 closed-loop publishers over 1,000
  rooms on SQLite and PostgreSQL, and CPU-µs per stored send at 1,000 sends/s beside Nchan's
  CPU per publish.
- **Connect** (`connect`): seconds until 19,000 SSE streams (1,900 rooms × 10) are
  established, in trust mode (new users), jwt mode (Bearer tokens) and on Nchan.
- **WebSocket fan-out** (`wsfanout`): 1 room × 1,000 `/chat/ws` subscribers at 100 msg/s, CPU-µs
  per delivered event and p50/p99 latency.
- **Broker** (`broker`): the same 1 room × 1,000 SSE fan-out on `--broker redis://` beside the
  in-memory broker, CPU-µs per delivered event and their ratio.
- **Quick figure** (`make bench ARGS=--quick`): Hubbub alone, 100 SSE subscribers, max rate.

`make bench` (every scenario, ~20 min) also records `bench/baseline.json`, the ratio the CI
regression gate (`make bench ARGS=--gate`, run by `.ci/run`) compares against.

Conditions: a small VM (2 cores) where the server, the load tools (`sseload`, `ssepub`, the
Python stream and WebSocket clients) and whatever else runs on the box compete for the CPU;
each section records the load average and how busy the box was. So compare **CPU-µs per
delivered event** and the **×Nchan ratios** first (they do not depend on who got the other
core), latency second, absolute rates last; expect ±15–30 % run to run.

Goals (issue 13): CPU per delivered event ≤ 0.9× Nchan in `fanout1k` with p99 ≤ 50 ms and
≤ 1.5× in `rooms` (the offered rate reached); ≤ 80 µs of CPU per stored send at 1,000/s,
≥ 10,000 durable sends/s on SQLite and ≥ 5,000 on PostgreSQL (64 publishers); 19,000 streams
connected in ≤ 3 s in both auth modes; ≤ 5 KiB per idle stream and ≤ 2 % idle CPU at 19,000;
≥ 1,000,000 deliveries/s sustained in `saturation`; Redis broker ≤ 1.2× memory.
"""

# Marker key -> placeholder of a section not measured yet, in document order.
SECTIONS = {
    "full": "## Hubbub vs Nchan (bench.py)\n\nNot run yet: `make bench`.",
    "chart": "## Latency vs offered load\n\nNot run yet: `make bench` (needs `saturation`).",
    "sends": '## Durable sends\n\nNot run yet: `make bench ARGS="--scenarios sends"`.',
    "connect": '## Connect\n\nNot run yet: `make bench ARGS="--scenarios connect"`.',
    "wsfanout": '## WebSocket fan-out\n\nNot run yet: `make bench ARGS="--scenarios wsfanout"`.',
    "broker": (
        '## Broker: Redis beside memory\n\nNot run yet: `make bench ARGS="--scenarios broker"`.'
    ),
    "quick": "## Quick figure\n\nNot run yet: `make bench ARGS=--quick`.",
}
HARNESS_SCENARIOS = ("fanout1k", "fanout5k", "rooms", "idle", "saturation")
OWN_SCENARIOS = ("sends", "connect", "wsfanout", "broker")
DEFAULT_SCENARIOS = "fanout1k,rooms,idle,saturation,sends,connect,wsfanout,broker"


def section(text: str, begin: str, end: str) -> str | None:
    m = re.search(re.escape(begin) + r".*?" + re.escape(end), text, flags=re.S)
    return m.group(0) if m else None


def write_doc(path: Path, parts: dict[str, str]) -> None:
    """Rewrite the given sections (key -> text with its markers) in place; the header is
    refreshed, every other section (the change-log and soak figures of their own tools, the
    parts not run this time) is kept as it is."""
    old = path.read_text() if path.exists() else ""
    sections = old[old.index("<!-- ") :] if "<!-- " in old else ""
    after = None  # the end marker of the section before, to insert a new one behind
    for key, placeholder in SECTIONS.items():
        begin, end = f"<!-- run.py:{key} -->", f"<!-- /run.py:{key} -->"
        found = section(sections, begin, end)
        new = parts.get(key)
        if found is None:
            body = (new or "\n".join((begin, placeholder, end))).rstrip("\n")
            if after is not None and after in sections:
                at = sections.index(after) + len(after)
                sections = f"{sections[:at]}\n\n{body}{sections[at:]}"
            else:
                sections = f"{sections.rstrip()}\n\n{body}"
        elif new is not None:
            sections = sections.replace(found, new.rstrip("\n"))
        after = end
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{HEADER.rstrip()}\n\n{sections.strip()}\n")
    log(f"wrote {path}")


# ------------------------------------------------------------------------------ main


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--write", metavar="PATH", type=Path, help="update this markdown file")
    ap.add_argument("--quick", action="store_true", help="the quick Hubbub-only figure")
    ap.add_argument("--targets", default="nchan,hubbub", help="bench.py targets [nchan,hubbub]")
    ap.add_argument(
        "--scenarios",
        default=DEFAULT_SCENARIOS,
        help=f"bench.py's {','.join(HARNESS_SCENARIOS)} and this tool's "
        f"{','.join(OWN_SCENARIOS)} [{DEFAULT_SCENARIOS}]",
    )
    ap.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds of publishing per load scenario [20; --quick, sends, wsfanout: 10]",
    )
    ap.add_argument("--tag", default="hubbub", help="bench.py run-id label [hubbub]")
    ap.add_argument("--install", action="store_true", help="apt-get install Nchan if missing")
    ap.add_argument(
        "--harness",
        type=Path,
        default=DEFAULT_HARNESS,
        help=f"the shared harness [{DEFAULT_HARNESS}]",
    )
    ap.add_argument(
        "--from-json", metavar="RESULT", type=Path, help="render an earlier bench.py result"
    )
    ap.add_argument("--note", help="a remark printed with the section (e.g. other load)")
    ap.add_argument("--keep", action="store_true", help="keep server logs and data dirs")
    ap.add_argument("--subscribers", type=int, default=100, help="--quick: subscribers [100]")
    ap.add_argument("--pub-conns", type=int, default=16, help="--quick: POST connections [16]")
    g = ap.add_argument_group("sends")
    g.add_argument("--databases", default="sqlite,postgresql", help="[sqlite,postgresql]")
    g.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432",
        help="server for the fresh databases, without a database name [%(default)s]",
    )
    g.add_argument("--sends-conns", default="16,64", help="closed-loop publishers [16,64]")
    g.add_argument("--sends-rooms", type=int, default=1000, help="rooms [1000]")
    g.add_argument("--sends-rate", type=float, default=1000, help="fixed rate for CPU [1000]")
    g = ap.add_argument_group("connect")
    g.add_argument("--connect-streams", type=int, default=19000, help="streams [19000]")
    g.add_argument("--connect-rooms", type=int, default=1900, help="rooms [1900]")
    g.add_argument("--jwt-per-user", type=int, default=100, help="jwt: streams per user [100]")
    g = ap.add_argument_group("wsfanout")
    g.add_argument("--ws-subs", type=int, default=1000, help="WebSocket subscribers [1000]")
    g.add_argument("--ws-rate", type=float, default=100, help="msg/s [100]")
    g.add_argument("--ws-procs", type=int, default=2, help="client processes [2]")
    g = ap.add_argument_group("broker")
    g.add_argument("--broker-subs", type=int, default=1000, help="SSE subscribers [1000]")
    g.add_argument("--broker-rate", type=float, default=100, help="msg/s [100]")
    g.add_argument("--broker-repeats", type=int, default=3, help="runs per broker, lowest kept [3]")
    g.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/14", help="[redis://127.0.0.1:6379/14]"
    )
    g = ap.add_argument_group("gate (CI)")
    g.add_argument("--gate", action="store_true", help="the CPU-ratio regression gate only")
    g.add_argument("--update-baseline", action="store_true", help="--gate: record the ratio")
    g.add_argument("--gate-subs", type=int, default=100, help="subscribers [100]")
    g.add_argument("--gate-rate", type=float, default=200, help="msg/s [200]")
    g.add_argument("--gate-duration", type=float, default=5, help="seconds per measurement [5]")
    g.add_argument("--gate-repeats", type=int, default=3, help="measurements, lowest kept [3]")
    g.add_argument("--tolerance", type=float, default=0.30, help="allowed regression [0.30]")
    return ap.parse_args(argv), extra


def own_facts(args: argparse.Namespace) -> Json:
    m = machine()
    return {
        "date": now_utc(),
        "machine_line": machine_line(m),
        "git": git_state(),
        "command": this_command(),
        "note": args.note,
    }


def run_gate(args: argparse.Namespace, harness: Path) -> int:
    ensure_nchan(args.install)
    build_harness(harness)
    t0 = time.monotonic()
    result = gate.measure(
        harness,
        subs=args.gate_subs,
        rate=args.gate_rate,
        duration=args.gate_duration,
        repeats=args.gate_repeats,
        keep=args.keep,
    )
    if args.update_baseline:
        if result["ratio"] is None:
            raise BenchError(f"no valid measurement to record: {result['problems']}")
        gate.save_baseline(result, git_state())
        return 0
    passed, why = gate.verdict(result, gate.load_baseline(), args.tolerance)
    took = time.monotonic() - t0
    print(f"bench gate: {'PASS' if passed else 'FAIL'}: {why} ({took:.0f} s)")
    for p in result["problems"]:
        print(f"bench gate: note: {p}")
    return 0 if passed else 1


def run_own(args: argparse.Namespace, harness: Path, own: list[str], nchan: bool) -> dict[str, str]:
    """This tool's scenarios; their rendered sections."""
    build_harness(harness)
    parts: dict[str, str] = {}
    duration = args.duration or 10.0
    if "sends" in own:
        res = sends.run(
            harness,
            databases=[d.strip() for d in args.databases.split(",") if d.strip()],
            pg_base=args.pg_url,
            conns_list=[int(c) for c in args.sends_conns.split(",") if c.strip()],
            rooms=args.sends_rooms,
            fixed_rate=args.sends_rate,
            fixed_conns=16,
            duration=duration,
            nchan=nchan,
            keep=args.keep,
        )
        parts["sends"] = sends.render(res, own_facts(args))
    if "connect" in own:
        res = connect.run(
            harness,
            conns=args.connect_streams,
            rooms=args.connect_rooms,
            per_user=args.jwt_per_user,
            nchan=nchan,
            keep=args.keep,
        )
        parts["connect"] = connect.render(res, own_facts(args))
    if "wsfanout" in own:
        res = wsfanout.run(
            harness,
            subs=args.ws_subs,
            rate=args.ws_rate,
            duration=duration,
            procs=args.ws_procs,
            keep=args.keep,
        )
        parts["wsfanout"] = wsfanout.render(res, own_facts(args))
    if "broker" in own:
        res = broker.run(
            harness,
            subs=args.broker_subs,
            rate=args.broker_rate,
            duration=duration,
            repeats=args.broker_repeats,
            redis_url=args.redis_url,
            keep=args.keep,
        )
        parts["broker"] = broker.render(res, own_facts(args))
    return parts


def main(argv: list[str] | None = None) -> int:
    args, extra = parse(sys.argv[1:] if argv is None else argv)
    harness: Path = args.harness.resolve()
    try:
        if args.gate:
            return run_gate(args, harness)
        if args.quick:
            info = quick(
                harness,
                subs=args.subscribers,
                duration=args.duration or 10.0,
                pub_conns=args.pub_conns,
                drain=3.0,
                keep=args.keep,
            )
            info["note"] = args.note
            text = render_quick(info)
            print(text)
            if args.write:
                write_doc(args.write, {"quick": text})
            return 0
        targets = [t.strip() for t in args.targets.split(",") if t.strip()]
        scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = set(scenarios) - set(HARNESS_SCENARIOS) - set(OWN_SCENARIOS)
        if unknown:
            raise BenchError(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        harness_scen = [s for s in scenarios if s in HARNESS_SCENARIOS]
        own = [s for s in scenarios if s in OWN_SCENARIOS]
        nchan = bool(NCHAN_TARGETS & set(targets))
        if nchan and not args.from_json:
            ensure_nchan(args.install)
        parts: dict[str, str] = {}
        if args.from_json or harness_scen:
            parts.update(full_mode(args, harness, targets, harness_scen, extra))
        if own and not args.from_json:
            parts.update(run_own(args, harness, own, nchan))
        for text in parts.values():
            print(text)
        if args.write:
            write_doc(args.write, parts)
        if (
            nchan
            and args.write
            and not args.from_json
            and set(scenarios) >= set(DEFAULT_SCENARIOS.split(","))
        ):
            # A whole run records the ratio the CI gate compares against.
            result = gate.measure(
                harness,
                subs=args.gate_subs,
                rate=args.gate_rate,
                duration=args.gate_duration,
                repeats=args.gate_repeats,
            )
            if result["ratio"] is not None:
                gate.save_baseline(result, git_state())
        return 0
    except BenchError as exc:
        print(f"bench/run.py: {exc}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(
            f"bench/run.py: {shlex.join(map(str, exc.cmd))} failed ({exc.returncode})",
            file=sys.stderr,
        )
        return 2


def full_mode(
    args: argparse.Namespace,
    harness: Path,
    targets: list[str],
    scenarios: list[str],
    extra: list[str],
) -> dict[str, str]:
    """bench.py's scenarios (or an earlier result): the "full" section, and the chart."""
    if args.from_json:
        raw = args.from_json.resolve()
        with open(raw) as f:
            run_id = json.load(f)["id"]
        facts: Json = saved_facts(args.write, run_id) or {
            "command": f"{this_command()} (re-rendered; the run's own command line is unknown)"
        }
    else:
        raw, facts = run_harness(
            harness, targets, ",".join(scenarios), args.duration or 20.0, args.tag, extra
        )
    with open(raw) as f:
        run: Json = json.load(f)
    if "machine" not in facts:
        bm = run.get("machine", {})
        facts["machine"] = {
            "nproc": bm.get("cpus"),
            "cpu_model": bm.get("cpu_model"),
            "mem_gib": bm.get("mem_gib"),
            "kernel": bm.get("kernel"),
            "python": bm.get("python"),
            "loadavg": ["?"],
        }
    if args.note is not None:
        facts["note"] = args.note
    parts = {"full": render_full(run, raw, facts)}
    png = (args.write or CHECKOUT / "docs" / "performance.md").parent / "performance-latency.png"
    if "saturation" in run.get("scenarios", []) and (args.write is None or chart.draw(run, png)):
        parts["chart"] = chart.render(run, png)
    return parts


if __name__ == "__main__":
    sys.exit(main())
