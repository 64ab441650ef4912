"""``python -m tests.chaos``: run the chaos checker, print the table, exit 1 on any violation.

Defaults are what ``make chaos`` runs: 150 faults on the cluster and 60 on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from pathlib import Path

from tests.chaos.deploy import missing_binaries, netns_available
from tests.chaos.oracle import Report, table
from tests.chaos.run import run_deployment

DEFAULT_FAULTS = {"cluster": 150, "sqlite": 60}
SECONDS_PER_FAULT = 1.2


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--faults", type=int, help="per deployment (default: 150 cluster, 60 sqlite)")
    p.add_argument("--deployment", choices=["cluster", "sqlite", "both"], default="both")
    p.add_argument("--duration", type=float, help="seconds of faults per deployment")
    p.add_argument("--write", type=Path, help="also write the table to this Markdown file")
    p.add_argument("--logs", type=Path, help="copy the servers' logs here if anything fails")
    return p.parse_args(argv)


def reproduce(args: argparse.Namespace, kind: str, faults: int, duration: float) -> str:
    cmd = [
        ".venv/bin/python", "-m", "tests.chaos", "--seed", str(args.seed), "--faults",
        str(faults), "--deployment", kind, "--duration", f"{duration:g}",
    ]  # fmt: skip
    return shlex.join(cmd)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    kinds = ["cluster", "sqlite"] if args.deployment == "both" else [args.deployment]
    missing = missing_binaries()
    partitions = netns_available()
    if "cluster" in kinds and missing:
        print(f"chaos: cannot run the cluster, missing {', '.join(missing)}", file=sys.stderr)
        return 2
    if "cluster" in kinds and not partitions:
        if os.environ.get("CI") == "true":
            print("chaos: network namespaces (root + ip netns) are required under CI")
            return 2
        print("chaos: note: no network namespaces (needs root + ip netns): no partitions")
        return 2  # the cluster's nodes live in namespaces; without them there is no cluster
    reports: list[Report] = []
    commands: dict[str, str] = {}
    for kind in kinds:
        faults = args.faults if args.faults is not None else DEFAULT_FAULTS[kind]
        duration = args.duration if args.duration is not None else faults * SECONDS_PER_FAULT
        commands[kind] = reproduce(args, kind, faults, duration)
        print(f"chaos: {kind}, seed {args.seed}, {faults} faults over ~{duration:g}s", flush=True)
        reports.append(
            asyncio.run(run_deployment(kind, args.seed, faults, duration, partitions, args.logs))
        )
    text = table(reports)
    print("\n" + text + "\n")
    failed = [r for r in reports if r.violations]
    for r in failed:
        print(f"VIOLATIONS in {r.deployment} (seed {r.seed}):")
        for line in r.violations[:60]:
            print("  - " + line)
        print(f"reproduce: {commands[r.deployment]}")
    if args.write is not None:
        write(args.write, args, text, commands, failed)
    if failed:
        return 1
    print("chaos: no violations. reproduce: " + "; ".join(commands.values()))
    return 0


def write(
    path: Path,
    args: argparse.Namespace,
    text: str,
    commands: dict[str, str],
    failed: list[Report],
) -> None:
    verdict = "**FAILED**" if failed else "passed: no violation"
    body = [
        "# Chaos checker results",
        "",
        "Written by `make chaos` (`python -m tests.chaos --write docs/chaos-results.md`); see",
        "`tests/chaos/` for what each fault does and what the oracle checks.",
        "",
        f"Seed {args.seed}: {verdict}.",
        "",
        text,
        "",
        "Reproduce one deployment exactly (same faults, same targets, same timings):",
        "",
        "```",
        *commands.values(),
        "```",
        "",
    ]
    path.write_text("\n".join(body))


if __name__ == "__main__":
    sys.exit(main())
