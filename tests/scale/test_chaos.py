"""A short run of the chaos checker (``make chaos`` is the long one): a fixed seed, fourteen
faults on each deployment, and not a single lost, doubled, reordered or divergent change.

It runs as a subprocess, as ``make chaos`` does, so that whatever the faults do to processes and
namespaces is cleaned up by the checker's own ``finally`` and never by pytest's teardown.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.chaos.deploy import missing_binaries, netns_available

ROOT = Path(__file__).resolve().parents[2]
SEED = 7


def _needs(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the chaos checker needs {what}; under CI it must run")
    pytest.skip(f"the chaos checker needs {what}")


@pytest.mark.timeout(240)
def test_short_chaos_run_finds_no_violation() -> None:
    missing = missing_binaries()
    if missing:
        _needs(f"PostgreSQL 15 and Redis binaries (missing: {', '.join(missing)})")
    if not netns_available():
        _needs("root and `ip netns` (each node runs in a network namespace)")
    cmd = [sys.executable, "-m", "tests.chaos", "--seed", str(SEED), "--faults", "14"]
    cmd += ["--deployment", "both", "--duration", "12"]
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=230)
    took = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"chaos checker failed (rc {result.returncode}):\n{output}"
    assert "| **violations** | 0 | 0 |" in output, output
    print(f"short chaos run: {took:.0f}s")
