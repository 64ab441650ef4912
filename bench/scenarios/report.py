"""Facts of a run (machine, git, log scan) and the "Hubbub vs Nchan" section of
docs/performance.md rendered from a bench.py results JSON (``bench/run.py``'s full mode)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from .common import CHECKOUT, Json, num

# The project's goals (see the "Goals" section of the document).
GOAL_FANOUT_RATIO = 0.9
GOAL_FANOUT_P99_MS = 50.0
GOAL_ROOMS_RATIO = 1.5
GOAL_IDLE_KIB = 5.0
GOAL_SATURATION = 1_000_000.0

FULL_BEGIN, FULL_END = "<!-- run.py:full -->", "<!-- /run.py:full -->"
QUICK_BEGIN, QUICK_END = "<!-- run.py:quick -->", "<!-- /run.py:quick -->"
FACTS_TAG = "<!-- run.py:facts"


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
    what, goal = "p99 delivery latency, fanout1k", f"≤ {GOAL_FANOUT_P99_MS:g} ms"
    fan = hub.get("fanout1k")
    if "fanout1k" not in run["scenarios"] or not fan or "error" in fan:
        rows.append((what, goal, "not measured in this run", "–"))
    elif fan.get("lat_p99_ms") is None:
        rows.append((what, goal, "no figure", "unknown"))
    else:
        p99 = float(fan["lat_p99_ms"])
        rows.append((what, goal, f"{p99:.1f} ms", "yes" if p99 <= GOAL_FANOUT_P99_MS else "no"))
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
