"""The latency chart: p99 vs offered load, Hubbub beside Nchan, from the saturation ladder.

bench.py records every saturation step (rate x subscribers offered, p99, verdict) in its
results JSON; this draws them (matplotlib, Agg) into ``docs/performance-latency.png``.
"""

from __future__ import annotations

from pathlib import Path

from .common import Json, log

BEGIN, END = "<!-- run.py:chart -->", "<!-- /run.py:chart -->"
COLOURS = {"hubbub": "#1f77b4", "nchan": "#d62728", "nchan2": "#ff7f0e", "node": "#2ca02c"}


def series(run: Json) -> dict[str, list[Json]]:
    """target -> saturation steps with an offered rate and a p99."""
    out = {}
    subs = (run.get("params") or {}).get("sat_subs") or 500
    for target, scenarios in (run.get("results") or {}).items():
        sat = (scenarios or {}).get("saturation") or {}
        steps = [
            {
                "offered": float(s["rate"]) * subs,
                "p99": float(s["lat_p99_ms"]),
                "ok": not s.get("fail"),
            }
            for s in sat.get("steps") or []
            if s.get("lat_p99_ms")
        ]
        if steps:
            out[target] = steps
    return out


def draw(run: Json, png: Path) -> bool:
    """Write the chart; False (and nothing written) when the run has no saturation steps."""
    data = series(run)
    if not data:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for target in sorted(data, key=lambda t: (t != "hubbub", t)):
        steps = data[target]
        colour = COLOURS.get(target, "#7f7f7f")
        xs, ys = [s["offered"] for s in steps], [s["p99"] for s in steps]
        ax.plot(xs, ys, "-", color=colour, label=target, linewidth=1.6)
        ok = [s for s in steps if s["ok"]]
        bad = [s for s in steps if not s["ok"]]
        ax.scatter([s["offered"] for s in ok], [s["p99"] for s in ok], color=colour, zorder=3)
        ax.scatter(
            [s["offered"] for s in bad],
            [s["p99"] for s in bad],
            facecolors="none",
            edgecolors=colour,
            zorder=3,
            s=60,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    subs = (run.get("params") or {}).get("sat_subs") or 500
    ax.set_xlabel(f"offered deliveries/s (msg/s × {subs} subscribers, 1 room)")
    ax.set_ylabel("p99 latency, ms (publish → event parsed)")
    ax.set_title(f"p99 latency vs offered load — run {run.get('id', '?')}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="filled: step passed; hollow: failed", fontsize=9, title_fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    log(f"wrote {png}")
    return True


def render(run: Json, png: Path) -> str:
    return "\n".join(
        [
            BEGIN,
            "## Latency vs offered load (saturation ladder)",
            "",
            f"![p99 latency vs offered load, Hubbub and Nchan]({png.name})",
            "",
            f"From run `{run.get('id', '?')}`'s saturation steps (1 room, "
            f"{(run.get('params') or {}).get('sat_subs', 500)} SSE subscribers, "
            f"{(run.get('params') or {}).get('sat_step', 5):g} s per step, the same as the "
            "saturation table): each point is one step's p99; a hollow point is a step that "
            "failed (p99 > 1 s, < 97 % delivered, publish errors, or a publisher that could not "
            "reach the rate), after which the ladder stops.",
            END,
        ]
    )
