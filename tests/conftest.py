from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Server


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
