from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Server

# Parallel runs (`make test`: pytest-xdist, ``-n 2 --dist loadgroup``). Each test module is one
# unit of work, so a module-scoped server starts once, on one worker. Modules that saturate the
# CPU or assert on timing carry ``pytestmark = pytest.mark.xdist_group(SERIAL)``: they all run on
# one worker, one after another, never beside each other (a light module may run beside them).
SERIAL = "serial"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _loadgroup(config):
        return
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    # The serial group is the longest unit: it starts first (with --no-loadscope-reorder, work
    # is handed out in collection order), the other worker takes everything else meanwhile.
    items.sort(key=lambda item: _group(item) != SERIAL)


def _loadgroup(config: pytest.Config) -> bool:
    # On a worker xdist sets ``loadgroup``; on the controller (and without xdist) ``dist``.
    if not config.pluginmanager.hasplugin("xdist"):
        return False
    return (
        bool(getattr(config.option, "loadgroup", False)) or config.getvalue("dist") == "loadgroup"
    )


def _group(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return None
    return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))


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
