"""The CI regression gate: Hubbub's CPU per delivered event relative to Nchan's, same run.

Both servers are started once; then ``repeats`` times a short fan-out (1 room x ``subs`` SSE
subscribers, ``rate`` msg/s for ``duration`` s) against Hubbub and then Nchan. The ratio of each
server's figure is its lowest CPU-µs per delivered event over the repeats (noise on a shared box
only ever adds CPU), and the ratio is Hubbub's / Nchan's. It fails when that ratio is
more than ``tolerance`` above the one recorded in ``bench/baseline.json`` (written by
``make bench`` with Nchan among the targets, or ``bench/run.py --gate --update-baseline``).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from .common import (
    CHAT_PUB,
    CHAT_SUB,
    CHECKOUT,
    HUBBUB_PORT,
    NCHAN_PORT,
    NCHAN_PUB,
    NCHAN_SUB,
    Json,
    Server,
    fanout_step,
    hubbub_command,
    log,
    nchan_command,
    num,
    running,
    workdir,
)

BASELINE = CHECKOUT / "bench" / "baseline.json"


def measure(
    harness: Path, *, subs: int, rate: float, duration: float, repeats: int, keep: bool = False
) -> Json:
    reps: list[Json] = []
    with workdir("hubbub-gate-", keep) as wd:
        hub = Server("hubbub", hubbub_command(str(wd / "data")), HUBBUB_PORT, wd)
        nch = Server("nchan", nchan_command(harness), NCHAN_PORT, wd)
        with running(hub), running(nch):
            for k in range(repeats):
                rep: Json = {}
                for name, srv, sub, pub in (
                    ("hubbub", hub, CHAT_SUB, CHAT_PUB),
                    ("nchan", nch, NCHAN_SUB, NCHAN_PUB),
                ):
                    rep[name] = fanout_step(
                        harness,
                        srv,
                        sub_path=sub,
                        pub=pub,
                        subs=subs,
                        rate=rate,
                        duration=duration,
                        prefix=f"g{k}",
                    )
                h, n = rep["hubbub"]["cpu_us_per_event"], rep["nchan"]["cpu_us_per_event"]
                rep["ratio"] = round(h / n, 3) if h and n else None
                log(
                    f"gate {k + 1}/{repeats}: hubbub {num(h, 2)} vs nchan {num(n, 2)} "
                    f"CPU-µs/event -> {num(rep['ratio'], 2)}×"
                )
                reps.append(rep)
    valid = [r for r in reps if r["ratio"] and not problems(r)]
    # Noise on a shared box only ever adds CPU per event: each server's lowest figure over the
    # repeats is its best estimate, and their ratio is steadier than the best single pair.
    hub = min((r["hubbub"]["cpu_us_per_event"] for r in valid), default=None)
    nch = min((r["nchan"]["cpu_us_per_event"] for r in valid), default=None)
    return {
        "shape": {"subs": subs, "rate": rate, "duration": duration, "repeats": repeats},
        "repeats": reps,
        "ratio": round(hub / nch, 3) if hub and nch else None,
        "hubbub_cpu_us_per_event": hub,
        "nchan_cpu_us_per_event": nch,
        "problems": sorted({p for r in reps for p in problems(r)}),
    }


def step_problems(name: str, r: Json) -> list[str]:
    """Why one ``fanout_step`` figure does not count (none: it does)."""
    out = []
    if r["publish_errors"]:
        out.append(f"{name}: {r['publish_errors']} publish errors")
    if (r["delivered_pct"] or 0) < 99:
        out.append(f"{name}: {num(r['delivered_pct'], 1)} % delivered")
    if r["established"] < r.get("subs", 0):
        out.append(f"{name}: only {r['established']} subscribers")
    return out


def problems(rep: Json) -> list[str]:
    return [p for name in ("hubbub", "nchan") for p in step_problems(name, rep[name])]


def load_baseline(path: Path = BASELINE) -> Json | None:
    if not path.exists():
        return None
    data: Json = json.loads(path.read_text())
    return data


def save_baseline(result: Json, git: str, path: Path = BASELINE) -> None:
    data = {
        "what": "Hubbub/Nchan ratio of server CPU-µs per delivered event (each the lowest of "
        "N repeats), short fan-out; compared against by `bench/run.py --gate` (make bench-gate)",
        "ratio": result["ratio"],
        "hubbub_cpu_us_per_event": result["hubbub_cpu_us_per_event"],
        "nchan_cpu_us_per_event": result["nchan_cpu_us_per_event"],
        "shape": result["shape"],
        "measured": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "git": git,
    }
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    log(f"wrote {path} (ratio {result['ratio']})")


def verdict(result: Json, baseline: Json | None, tolerance: float) -> tuple[bool, str]:
    """(passed, one line saying why)."""
    ratio = result["ratio"]
    if ratio is None:
        return False, f"no valid measurement: {'; '.join(result['problems']) or 'no deliveries'}"
    if baseline is None or not baseline.get("ratio"):
        return True, f"ratio {ratio:.2f}× (no baseline recorded in {BASELINE.name}: not compared)"
    limit = float(baseline["ratio"]) * (1 + tolerance)
    change = 100 * (ratio / float(baseline["ratio"]) - 1)
    line = (
        f"ratio {ratio:.2f}× Nchan (lowest of {result['shape']['repeats']} each: Hubbub "
        f"{result['hubbub_cpu_us_per_event']} vs Nchan {result['nchan_cpu_us_per_event']} "
        f"CPU-µs/event) vs baseline {float(baseline['ratio']):.2f}× ({baseline.get('measured')})"
        f": {change:+.0f} %, limit {limit:.2f}× (+{100 * tolerance:.0f} %)"
    )
    return ratio <= limit, line
