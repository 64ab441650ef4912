"""``broker``: CPU per delivered event with ``--broker redis://…`` beside the in-memory broker.

The same fan-out (1 room x ``subs`` SSE subscribers, ``rate`` msg/s for ``duration`` s, the
harness's ``sseload`` and ``ssepub``) against one Hubbub process started twice: on its default
in-memory broker, then on Redis (the broker a multi-node deployment uses; here one node, so
every message makes the round trip through Redis and back). Each figure is the lowest of
``repeats`` runs (noise on a shared box only ever adds CPU); the ratio is Redis's / memory's.
"""

from __future__ import annotations

from pathlib import Path

from .common import (
    CHAT_PUB,
    CHAT_SUB,
    HUBBUB_PORT,
    Json,
    Server,
    fanout_step,
    hubbub_command,
    log,
    num,
    running,
    workdir,
)
from .gate import step_problems
from .sends import facts_lines

BEGIN, END = "<!-- run.py:broker -->", "<!-- /run.py:broker -->"


def run(
    harness: Path,
    *,
    subs: int,
    rate: float,
    duration: float,
    repeats: int,
    redis_url: str,
    keep: bool = False,
) -> Json:
    out: Json = {
        "shape": {"subs": subs, "rate": rate, "duration": duration, "repeats": repeats},
        "redis_url": redis_url,
        "results": {},
    }
    with workdir("hubbub-broker-", keep) as wd:
        for name, extra in (("memory", []), ("redis", ["--broker", redis_url])):
            cmd = hubbub_command(str(wd / f"data-{name}"), extra=extra)
            reps: list[Json] = []
            with running(Server("hubbub", cmd, HUBBUB_PORT, wd)) as srv:
                for k in range(repeats):
                    rep = fanout_step(
                        harness,
                        srv,
                        sub_path=CHAT_SUB,
                        pub=CHAT_PUB,
                        subs=subs,
                        rate=rate,
                        duration=duration,
                        prefix=f"{name[0]}{k}",
                    )
                    log(
                        f"broker / {name} {k + 1}/{repeats}: "
                        f"{num(rep['cpu_us_per_event'], 2)} CPU-µs/event, "
                        f"{num(rep['delivered_pct'], 1)} % delivered, "
                        f"p99 {num(rep['p99_ms'], 1)} ms"
                    )
                    reps.append(rep)
                errors = srv.log_errors()
            good = [r for r in reps if r["cpu_us_per_event"] and not step_problems(name, r)]
            best = min(good, key=lambda r: r["cpu_us_per_event"], default=None)
            out["results"][name] = {
                "repeats": reps,
                "best": best,
                "server_command": " ".join(cmd),
                "log_errors": errors,
            }
    mem = (out["results"]["memory"]["best"] or {}).get("cpu_us_per_event")
    red = (out["results"]["redis"]["best"] or {}).get("cpu_us_per_event")
    out["ratio"] = round(red / mem, 3) if mem and red else None
    return out


def render(res: Json, facts: Json) -> str:
    shape = res["shape"]
    lines = [
        BEGIN,
        "## Broker: Redis beside memory (`bench/run.py --scenarios broker`)",
        "",
        *facts_lines(facts),
        "",
        f"1 room × {num(shape['subs'])} SSE subscribers, {num(shape['rate'])} msg/s for "
        f"{num(shape['duration'])} s, one Hubbub process on its in-memory broker and then on "
        f"`--broker {res['redis_url']}` (each message goes to Redis and back); the lowest of "
        f"{shape['repeats']} runs each. Goal: Redis ≤ 1.2× memory.",
        "",
        "| broker | CPU-µs per delivered event | ×memory | delivered % | p50 ms | p99 ms "
        "| server CPU % |",
        "|---|---|---|---|---|---|---|",
    ]
    mem = (res["results"]["memory"]["best"] or {}).get("cpu_us_per_event")
    for name in ("memory", "redis"):
        best = res["results"][name]["best"] or {}
        cpu = best.get("cpu_us_per_event")
        ratio = f"{cpu / mem:.2f}×" if cpu and mem else "–"
        lines.append(
            f"| {name} | {num(cpu, 2)} | {ratio} | {num(best.get('delivered_pct'), 1)} "
            f"| {num(best.get('p50_ms'), 1)} | {num(best.get('p99_ms'), 1)} "
            f"| {num(best.get('server_cpu_pct'), 1)} |"
        )
    ratio = res.get("ratio")
    met = "met" if ratio is not None and ratio <= 1.2 else "not met"
    lines += [
        "",
        f"Redis / memory: {num(ratio, 2)}× ({met}). Server: "
        f"`{res['results']['redis']['server_command']}`.",
        END,
    ]
    return "\n".join(lines)
