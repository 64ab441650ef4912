#!/usr/bin/env python3
"""Hubbub's benchmark entry point (``make bench``); python3 stdlib only.

Two modes:

* full (default): run the shared harness ``<checkout>/../shared/bench/bench.py`` against Hubbub
  and Nchan, read the raw JSON it writes (``<harness>/results/<run-id>.json``) and render the
  comparison, with the project's goals, into ``docs/performance.md`` (``--write``).
* ``--quick``: no Nchan needed. Start Hubbub alone, 100 SSE subscribers in one room
  (``bin/sseload``), ``bin/ssepub`` at max rate with 16 connections for 10 s; report messages/s
  accepted, deliveries/s and latency (section "Quick figure").

Each mode rewrites only its own section of the document, so the two can be run separately.
Arguments after a literal ``--`` are passed to bench.py unchanged (e.g. ``-- --idle-window 15``).

    python3 bench/run.py --quick --write docs/performance.md
    python3 bench/run.py --duration 10 --scenarios fanout1k,rooms,idle --write docs/performance.md
    python3 bench/run.py --from-json ../shared/bench/results/<id>.json --write docs/performance.md
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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

# The project's goals (see the "Goals" section of the document).
GOAL_FANOUT_RATIO = 1.0
GOAL_ROOMS_RATIO = 1.5
GOAL_IDLE_KIB = 10.0
GOAL_SATURATION = 500_000.0

FULL_BEGIN, FULL_END = "<!-- run.py:full -->", "<!-- /run.py:full -->"
QUICK_BEGIN, QUICK_END = "<!-- run.py:quick -->", "<!-- /run.py:quick -->"
FACTS_TAG = "<!-- run.py:facts"

Json = dict[str, Any]


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), "[run.py]", *parts, file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A precondition failed; the message says what to do."""


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


def hubbub_exe() -> str:
    venv = CHECKOUT / ".venv" / "bin" / "hubbub"
    if venv.exists():
        return str(venv)
    found = shutil.which("hubbub")
    if found is None:
        raise BenchError("no hubbub executable: run `make install` first")
    return found


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((HOST, port)) == 0


def ensure_ports_free(ports: Sequence[int]) -> None:
    busy = sorted({p for p in ports if port_in_use(p)})
    if busy:
        raise BenchError(
            f"port(s) {', '.join(map(str, busy))} already in use: stop whatever listens there "
            "(the harness refuses to measure a server it did not start)"
        )


# ------------------------------------------------------------------------------ facts


def machine() -> Json:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
                break
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 0
    return {
        "nproc": nproc,
        "cpu_model": model or platform.processor() or "unknown",
        "mem_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "busy_pct": box_busy_pct(),
    }


def box_busy_pct(seconds: float = 1.0) -> float | None:
    """Whole-machine CPU busy % over ``seconds`` (other work sharing the box)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v[:8]), v[3] + v[4]

    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except OSError:
        return None
    return round(100 * (1 - (i1 - i0) / (t1 - t0)), 1) if t1 > t0 else None


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def hubbub_env() -> dict[str, str]:
    """HUBBUB_* settings inherited from the environment (they change what is measured)."""
    return {
        k: v
        for k, v in sorted(os.environ.items())
        if k.startswith("HUBBUB_") and k not in {"HUBBUB_CMD", "HUBBUB_CHECKOUT"}
    }


def git_state() -> str:
    """HEAD of the checkout, and whether src/ differs from it (what was measured)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(CHECKOUT), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(CHECKOUT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"`{head}`" + (" + uncommitted changes in src/" if dirty else "")


def this_command() -> str:
    return shlex.join([sys.executable, *sys.argv])


def scan_log(path: Path) -> Json:
    """Counts of what matters in a server log, and the first error lines."""
    out: Json = {"path": str(path), "tracebacks": 0, "errors": 0, "slow_cutoffs": 0, "excerpt": []}
    if not path.exists():
        return out
    excerpt: list[str] = out["excerpt"]
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            out["tracebacks"] += 1
        if " ERROR " in line or line.startswith("ERROR:"):
            out["errors"] += 1
            if len(excerpt) < 20:
                excerpt.extend(lines[i : i + 8])
        if "cutting off slow" in line:
            out["slow_cutoffs"] += 1
    return out


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


def flags(**given: object) -> list[str]:
    """``flags(p=8090, c=100)`` -> ``['-p', '8090', '-c', '100']`` (the C tools' options)."""
    return [arg for k, v in given.items() for arg in (f"-{k}", str(v))]


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


class Subscribers:
    """bin/sseload in the background: wait for its READY line, then read its JSON result."""

    def __init__(self, args: list[str], timeout: float) -> None:
        self.timeout = timeout
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.ready = threading.Event()
        self.ready_line = ""
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            if line.startswith("READY"):
                self.ready_line = line.strip()
                self.ready.set()
        self.ready.set()

    def wait_ready(self) -> str:
        self.ready.wait(self.timeout)
        return self.ready_line

    def result(self) -> Json:
        try:
            out, _ = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self._reader.join(2)
        try:
            parsed: Json = json.loads(out)
        except ValueError:
            return {"error": "bad sseload output", "stderr": "".join(self.stderr)[-2000:]}
        return parsed


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
            load = Subscribers(sub_args, timeout=30 + duration + drain + 30)
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


def num(v: Any, nd: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int | float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if isinstance(v, int):
            return str(v)
        return f"{v:.{nd}f}"
    return str(v)


def times(v: float | None, ref: float | None) -> str:
    if v is None or not ref:
        return "–"
    return f"{v / ref:.2f}×"


def ordered(targets: list[str]) -> list[str]:
    """Hubbub first, then Nchan, then the rest in run order."""
    rank = {"hubbub": 0, "nchan": 1}
    return sorted(targets, key=lambda t: (rank.get(t, 2), targets.index(t)))


SCENARIO_TITLES = {
    "fanout1k": "1 room × 1,000 subscribers",
    "fanout5k": "1 room × 5,000 subscribers",
    "rooms": "1,000 rooms × 10 subscribers, round-robin",
}


def load_table(run: Json, scenario: str) -> list[str]:
    res: Json = run["results"]
    p: Json = run.get("params", {})
    rate = {
        "fanout1k": p.get("fanout_rate"),
        "fanout5k": p.get("fanout5k_rate"),
        "rooms": p.get("rooms_rate"),
    }[scenario]
    ref = (res.get("nchan", {}).get(scenario) or {}).get("cpu_us_per_event")
    lines = [
        f"### {scenario} — {SCENARIO_TITLES[scenario]}, {num(rate, 0)} msg/s offered "
        f"for {num(p.get('duration'), 0)} s",
        "",
        "| target | CPU-µs per delivered event | ×Nchan | delivered/s (offered) | delivered % "
        "| p50 ms | p99 ms | RSS MiB | server CPU % | pub msg/s reached | publish errors "
        "| box busy % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in ordered(run["targets"]):
        r = res.get(t, {}).get(scenario)
        if not r or "error" in r:
            lines.append(f"| {t} | error: {(r or {}).get('error', 'not run')} |" + " |" * 10)
            continue
        lines.append(
            f"| {t} | {num(r['cpu_us_per_event'], 2)} | {times(r['cpu_us_per_event'], ref)} "
            f"| {num(r['delivered_per_s'])} ({num(r['offered_deliveries_per_s'])}) "
            f"| {num(100 * (r['delivery_ratio'] or 0), 1)} | {num(r['lat_p50_ms'], 2)} "
            f"| {num(r['lat_p99_ms'], 2)} | {num(r['rss_after_mib'])} | {num(r['server_cpu_pct'])} "
            f"| {num(r['pub_achieved_rate'], 0)} | {num(r['pub_errors'])} "
            f"| {num(r['system_busy_pct'])} |"
        )
    return lines


def idle_table(run: Json) -> list[str]:
    res: Json = run["results"]
    p: Json = run.get("params", {})
    ref = (res.get("nchan", {}).get("idle") or {}).get("rss_per_conn_kib")
    lines = [
        f"### idle — {num(p.get('idle_conns'))} idle subscribers "
        f"({num(p.get('idle_conns', 0) // 10)} rooms × 10), "
        f"{num(p.get('idle_window'), 0)} s window",
        "",
        "| target | established | RSS base MiB | RSS MiB | KiB per idle connection | ×Nchan "
        "| idle CPU % | CPU-µs/conn/s | connect s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in ordered(run["targets"]):
        r = res.get(t, {}).get("idle")
        if not r or "error" in r:
            lines.append(f"| {t} | error: {(r or {}).get('error', 'not run')} |" + " |" * 7)
            continue
        lines.append(
            f"| {t} | {num(r['established'])} | {num(r['rss_base_mib'])} | {num(r['rss_mib'])} "
            f"| {num(r['rss_per_conn_kib'], 2)} | {times(r['rss_per_conn_kib'], ref)} "
            f"| {num(r['idle_cpu_pct'], 2)} | {num(r['idle_cpu_us_per_conn_s'], 3)} "
            f"| {num(r['connect_time_s'], 2)} |"
        )
    return lines


def saturation_table(run: Json) -> list[str]:
    res: Json = run["results"]
    p: Json = run.get("params", {})
    ref = (res.get("nchan", {}).get("saturation") or {}).get("max_sustained_deliveries_per_s")
    lines = [
        f"### saturation — 1 room × {num(p.get('sat_subs'))} subscribers, "
        f"{num(p.get('sat_step'), 0)} s steps up the rate ladder",
        "",
        "| target | max sustained deliveries/s | ×Nchan | at msg/s | CPU-µs/event there "
        "| p99 ms there | peak delivered/s | steps (msg/s → delivered/s, p99 ms, verdict) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in ordered(run["targets"]):
        r = res.get(t, {}).get("saturation")
        if not r or "error" in r:
            lines.append(f"| {t} | error: {(r or {}).get('error', 'not run')} |" + " |" * 6)
            continue
        steps = "; ".join(
            f"{num(s['rate'], 0)}→{num(s['delivered_per_s'])}, {num(s['lat_p99_ms'], 0)}, "
            + ("ok" if not s["fail"] else "/".join(s["fail"]))
            for s in r["steps"]
        )
        lines.append(
            f"| {t} | {num(r['max_sustained_deliveries_per_s'])} "
            f"| {times(r['max_sustained_deliveries_per_s'], ref)} | {num(r['max_sustained_rate'])} "
            f"| {num(r['cpu_us_per_event_at_max'], 2)} | {num(r['p99_ms_at_max'], 1)} "
            f"| {num(r['peak_delivered_per_s'])} | {steps} |"
        )
    return lines


def trouble(r: Json) -> str:
    """Why a load result cannot count (lost deliveries, failed publishes), else ''."""
    why = []
    if r.get("pub_errors"):
        why.append(f"{r['pub_errors']} publish errors/non-2xx")
    if (r.get("delivery_ratio") or 0) < 0.99:
        why.append(f"{100 * (r.get('delivery_ratio') or 0):.1f} % delivered")
    return ", ".join(why)


def goals(run: Json) -> list[str]:
    res: Json = run["results"]
    hub: Json = res.get("hubbub", {})
    nchan: Json = res.get("nchan", {})
    rows: list[tuple[str, str, str, str]] = []

    def ratio_goal(scenario: str, limit: float) -> None:
        goal = f"≤ {limit:.1f}× Nchan"
        what = f"CPU per delivered event, {scenario}"
        h, n = hub.get(scenario), nchan.get(scenario)
        if scenario not in run["scenarios"]:
            rows.append((what, goal, "not measured in this run", "–"))
            return
        if not h or "error" in h or not n or "error" in n:
            err = (h or {}).get("error") or (n or {}).get("error") or "target not run"
            rows.append((what, goal, f"no figure ({err})", "unknown"))
            return
        hv, nv = h.get("cpu_us_per_event"), n.get("cpu_us_per_event")
        if not hv or not nv:
            rows.append((what, goal, "no deliveries", "no"))
            return
        r = hv / nv
        measured = f"{r:.2f}× ({hv:.2f} vs {nv:.2f} µs)"
        bad = trouble(h)
        verdict = ("yes" if r <= limit else "no") if not bad else f"not valid: {bad}"
        rows.append((what, goal, measured, verdict))

    ratio_goal("fanout1k", GOAL_FANOUT_RATIO)
    ratio_goal("rooms", GOAL_ROOMS_RATIO)

    what, goal = "memory per idle stream", f"≤ {GOAL_IDLE_KIB:g} KiB"
    idle = hub.get("idle")
    if "idle" not in run["scenarios"]:
        rows.append((what, goal, "not measured in this run", "–"))
    elif not idle or "error" in idle or idle.get("rss_per_conn_kib") is None:
        rows.append(
            (what, goal, f"no figure ({(idle or {}).get('error', 'no stream')})", "unknown")
        )
    else:
        kib = float(idle["rss_per_conn_kib"])
        note = ""
        if idle.get("established") != idle.get("conns"):
            note = f" (only {idle.get('established')} of {idle.get('conns')} connected)"
        rows.append((what, goal, f"{kib:.2f} KiB{note}", "yes" if kib <= GOAL_IDLE_KIB else "no"))

    what, goal = "max sustained deliveries/s, saturation", f"≥ {GOAL_SATURATION:,.0f}/s"
    sat = hub.get("saturation")
    if "saturation" not in run["scenarios"]:
        rows.append((what, goal, "not measured in this run", "–"))
    elif not sat or "error" in sat:
        rows.append((what, goal, f"no figure ({(sat or {}).get('error', 'not run')})", "unknown"))
    else:
        v = float(sat.get("max_sustained_deliveries_per_s") or 0)
        rows.append((what, goal, f"{v:,.0f}/s", "yes" if v >= GOAL_SATURATION else "no"))

    lines = [
        "### Goals",
        "",
        "| goal | target | measured (Hubbub) | met? |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return lines


def machine_line(m: Json) -> str:
    return (
        f"{m['nproc']} CPU (nproc), {m['cpu_model']}, {m['mem_gib']} GiB RAM, "
        f"kernel {m['kernel']}, Python {m['python']}; before the run: load average "
        f"{' / '.join(str(x) for x in m['loadavg'])}, box busy {num(m.get('busy_pct'))} %"
    )


def render_full(run: Json, raw: Path, facts: Json) -> str:
    scen: list[str] = run["scenarios"]
    m = facts.get("machine") or machine()
    lines = [
        FULL_BEGIN,
        "## Hubbub vs Nchan (bench.py)",
        "",
        f"- date: {run.get('date', '?')} (run `{run['id']}`)",
        f"- machine: {machine_line(m)}",
        f"- Hubbub: {facts.get('git', '?')}",
        f"- command: `{facts.get('command', '?')}`",
        f"- harness command: `{facts.get('harness_command', run.get('command', '?'))}`",
        f"- raw results: `{raw}`; server logs: `{raw.parent / 'logs' / run['id']}/`",
        f"- targets: {', '.join(ordered(run['targets']))}; scenarios: {', '.join(scen)}; "
        f"took {num(run.get('elapsed_s'), 0)} s",
    ]
    if facts.get("note"):
        lines.append(f"- note: {facts['note']}")
    env = facts.get("hubbub_env") or {}
    if env:
        lines.append(
            "- HUBBUB_* environment in effect: " + ", ".join(f"`{k}={v}`" for k, v in env.items())
        )
    lines += [
        "- Hubbub as measured: `hubbub serve --auth trust` on uvloop + httptools, SQLite "
        "(synchronous FULL, group commit) in a fresh temporary data dir per scenario on the "
        "local ext4 disk, in-memory broker, **per-user rate limiter off** "
        "(`--rate-limit-per-second 0`: the harness publishes as 8–16 users `pub{conn}` at up "
        "to 2,000 msg/s, which the default 10/s, burst 20 per user would answer with 429).",
        "",
        "CPU-µs per delivered event = server CPU time (process tree) / delivered events; "
        "×Nchan = the same figure relative to Nchan (1 worker) in this run, lower is better. "
        "Delivered % < 100 means loss or a backlog that had not drained 3 s after publishing. "
        "See the harness README for every figure.",
    ]
    for s in ("fanout1k", "fanout5k", "rooms"):
        if s in scen:
            lines += ["", *load_table(run, s)]
    if "idle" in scen:
        lines += ["", *idle_table(run)]
    if "saturation" in scen:
        lines += ["", *saturation_table(run)]
    lines += ["", *goals(run)]
    problems = []
    for s in scen:
        r = run["results"].get("hubbub", {}).get(s)
        if not r:
            continue
        if "error" in r:
            problems.append(f"{s}: {r['error']}")
        elif s in ("fanout1k", "fanout5k", "rooms"):
            if trouble(r):
                problems.append(f"{s}: {trouble(r)}")
            if (r.get("pub_achieved_rate") or 0) < 0.95 * r["rate"]:
                problems.append(
                    f"{s}: the publisher reached only {num(r.get('pub_achieved_rate'), 0)} of "
                    f"{num(r['rate'], 0)} msg/s (POST response p99 "
                    f"{num(r.get('pub_response_p99_ms'), 1)} ms; one request in flight per "
                    "connection), so the offered load was not met"
                )
        elif s == "idle":
            if r.get("established") != r.get("conns"):
                problems.append(f"idle: {r.get('established')} of {r.get('conns')} connected")
            if (r.get("connect_time_s") or 0) > 60:
                problems.append(
                    f"idle: opening {num(r.get('conns'))} streams took "
                    f"{num(r.get('connect_time_s'), 1)} s (harness connect timeout: 120 s)"
                )
    logscan = scan_log(raw.parent / "logs" / run["id"] / "hubbub.server.log")
    lines += [
        "",
        "### Hubbub problems seen in this run",
        "",
        f"- server log: {logscan['tracebacks']} tracebacks, {logscan['errors']} ERROR lines, "
        f"{logscan['slow_cutoffs']} slow-client cut-offs (`{logscan['path']}`)",
    ]
    lines += [f"- {p}" for p in problems] or ["- harness: no publish errors, no lost deliveries"]
    if logscan["excerpt"]:
        lines += ["", "```", *logscan["excerpt"][:20], "```"]
    # What only the run knew (command, git state, load), so --from-json re-renders losslessly.
    kept = json.dumps({**facts, "run_id": run["id"]}, ensure_ascii=False).replace("--", "-\\u002d")
    lines += ["", f"{FACTS_TAG} {kept} -->", FULL_END]
    return "\n".join(lines)


def saved_facts(doc: Path | None, run_id: str) -> Json | None:
    """The facts of run ``run_id`` stored in ``doc``'s full section, if it holds that run."""
    if doc is None or not doc.exists():
        return None
    m = re.search(re.escape(FACTS_TAG) + r" (\{.*\}) -->", doc.read_text())
    if not m:
        return None
    try:
        facts: Json = json.loads(m.group(1))
    except ValueError:
        return None
    return facts if facts.get("run_id") == run_id else None


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
rewritten by its own mode (`make bench`, `make bench ARGS=--quick`); the rest is kept.

Conditions: a small VM (2 cores) where the server, the load tools (`sseload`, `ssepub`) and
whatever else runs on the box compete for the CPU; each section records the load average and
how busy the box was just before it ran, and the tables the whole box's busy % per window.
So compare **CPU-µs per delivered event** and the **×Nchan ratios** first (they do not depend
on who got the other core), latency second, absolute rates last; expect ±15–30 % run to run.
Keep runs short on a shared box: the full default run (four scenarios × two targets) keeps
both cores busy for about 10 minutes; `--quick` for about 15 seconds.

Goals: CPU per delivered event ≤ 1.0× Nchan in `fanout1k` and ≤ 1.5× in `rooms`,
≤ 10 KiB per idle stream, ≥ 500,000 deliveries/s sustained in `saturation`.
"""


def section(text: str, begin: str, end: str) -> str | None:
    m = re.search(re.escape(begin) + r".*?" + re.escape(end), text, flags=re.S)
    return m.group(0) if m else None


def write_doc(path: Path, full: str | None, quick_part: str | None) -> None:
    """Rewrite this mode's section in place; the header is refreshed, every other section (the
    change-log and soak figures of their own tools) is kept as it is."""
    old = path.read_text() if path.exists() else ""
    sections = old[old.index("<!-- ") :] if "<!-- " in old else ""
    defaults = (
        (FULL_BEGIN, FULL_END, full, "## Hubbub vs Nchan (bench.py)\n\nNot run yet: `make bench`."),
        (
            QUICK_BEGIN,
            QUICK_END,
            quick_part,
            "## Quick figure\n\nNot run yet: `make bench ARGS=--quick`.",
        ),
    )
    for begin, end, new, placeholder in defaults:
        found = section(sections, begin, end)
        if found is None:
            body = new or "\n".join((begin, placeholder, end))
            sections = f"{sections.rstrip()}\n\n{body}"
        elif new is not None:
            sections = sections.replace(found, new.rstrip("\n"))
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
        default="fanout1k,rooms,idle,saturation",
        help="bench.py scenarios [fanout1k,rooms,idle,saturation]",
    )
    ap.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds of publishing per load scenario [20; --quick: 10]",
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
    ap.add_argument("--keep", action="store_true", help="--quick: keep the server log and data")
    ap.add_argument("--subscribers", type=int, default=100, help="--quick: subscribers [100]")
    ap.add_argument("--pub-conns", type=int, default=16, help="--quick: POST connections [16]")
    return ap.parse_args(argv), extra


def main(argv: list[str] | None = None) -> int:
    args, extra = parse(sys.argv[1:] if argv is None else argv)
    harness: Path = args.harness.resolve()
    try:
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
                write_doc(args.write, None, text)
            return 0
        targets = [t.strip() for t in args.targets.split(",") if t.strip()]
        if args.from_json:
            raw = args.from_json.resolve()
            with open(raw) as f:
                run_id = json.load(f)["id"]
            facts: Json = saved_facts(args.write, run_id) or {
                "command": f"{this_command()} (re-rendered; the run's own command line is unknown)"
            }
        else:
            if NCHAN_TARGETS & set(targets):
                ensure_nchan(args.install)
            raw, facts = run_harness(
                harness, targets, args.scenarios, args.duration or 20.0, args.tag, extra
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
        text = render_full(run, raw, facts)
        print(text)
        if args.write:
            write_doc(args.write, text, None)
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


if __name__ == "__main__":
    sys.exit(main())
