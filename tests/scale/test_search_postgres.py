"""The whole search suite again, on PostgreSQL full-text search instead of SQLite FTS5."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.test_search import *  # noqa: F403  (the same tests, other store)
from tests.support import Server, create_pg_database, drop_pg_database


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="module")
def trust_server(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("pg-trust"),
        auth="trust",
        env={"HUBBUB_DATABASE": pg_url, "HUBBUB_RATE_LIMIT_PER_SECOND": "0"},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("pg-jwt"), auth="jwt", env={"HUBBUB_DATABASE": pg_url})
    server.start()
    yield server
    server.stop()
