from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Server

# Parallel runs: `make test` is ``pytest -n 2 --dist loadgroup`` (pytest-xdist). Each test module
# is one unit of work, so a module-scoped server starts once, on one worker. The modules below
# load the CPU (clusters of nodes, ab, a 20 MB firehose, schemathesis) or assert on timing and
# memory; they form one group, ``serial``: one worker runs them one after another, never two at
# once (a light module may run beside them on the other worker). A new module that saturates the
# CPU or measures time belongs here. Parametrize ids must not come from random or time-dependent
# values: every worker must collect the same tests.
#
# The grouping is done by the scheduler below, from these paths, and not by
# ``pytest.mark.xdist_group``: xdist 3.8 tags a grouped test by assigning ``item._nodeid``, which
# pytest 9 no longer reads, so the marks are silently ignored and every test is scheduled alone.
SERIAL = "serial"
SERIAL_MODULES = frozenset(
    {
        # nodes sharing PostgreSQL and Redis; restarts, kills and outages with time bounds
        "tests/scale/test_chaos.py",
        "tests/scale/test_cluster.py",
        "tests/scale/test_failover.py",
        "tests/scale/test_nginx.py",
        "tests/scale/test_postgres_outage.py",
        "tests/scale/test_presence_ratelimit.py",
        "tests/scale/test_redis_restart.py",
        "tests/scale/test_revocation.py",
        # load: ab with 100 streams, a 20 MB firehose with a p99 bound, schemathesis
        "tests/integration/test_seed_loadtest.py",
        "tests/integration/test_slow_client.py",
        "tests/fuzz/test_schemathesis.py",
        # latency, elapsed-time and RSS bounds
        "tests/integration/test_longpoll.py",
        "tests/integration/test_sessions.py",
        "tests/integration/test_every_change.py",
        "tests/integration/test_abuse_limits.py",
        "tests/integration/test_seed_ws.py",
        "tests/integration/test_keepalive_shutdown.py",
    }
)


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: ``serial``, or its module's path."""
    module = nodeid.split("::", 1)[0]
    return SERIAL if module in SERIAL_MODULES else module


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: `-p no:xdist` runs
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class ModuleScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # On an xdist worker of a loadgroup run: the serial group, the longest unit, comes first in
    # the collection, so with --no-loadscope-reorder it is handed out first and the other
    # worker takes everything else meanwhile (a stable sort: module order is kept).
    if getattr(config.option, "loadgroup", False):
        items.sort(key=lambda item: work_unit(item.nodeid) != SERIAL)


@pytest.fixture(scope="module")
def trust_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One trust-mode server per test module (clean database per module)."""
    server = Server(
        tmp_path_factory.mktemp("trust"),
        auth="trust",
        env={"HUBBUB_RATE_LIMIT_BURST": "1000", "HUBBUB_RATE_LIMIT_PER_SECOND": "1000"},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("jwt"), auth="jwt")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
