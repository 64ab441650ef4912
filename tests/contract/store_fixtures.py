"""Shared fixtures of the store contract (``tests/contract/test_store_*.py``): every test runs
against every backend. Not a conftest, so other contract suites in this directory keep their
own: a test module imports the fixtures it uses (``store_fixture``, ``store_url_fixture``;
registered under the names ``store`` and ``store_url``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hubbub.changes import Entry, LoggedMessage
from hubbub.models import NewMessage
from hubbub.store.base import AppendRequest
from hubbub.store.sql import SqlStore
from tests.support import create_pg_database, drop_pg_database


@pytest.fixture(name="store_url", params=["sqlite", "postgresql"])
def store_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every contract test runs against every backend, each on a database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'contract.db'}"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(name="store")
async def store_fixture(store_url: str) -> AsyncIterator[SqlStore]:
    s = await open_store(store_url)
    try:
        yield s
    finally:
        await s.close()


async def open_store(url: str) -> SqlStore:
    store = SqlStore(url)
    await store.start()
    return store


def req(room: str, user: str, text: str, cmid: str | None = None) -> AppendRequest:
    """A trust-mode send: the room is created and a public room joined on first use."""
    return AppendRequest(
        NewMessage(room_id=room, user_id=user, username=user, text=text, client_msg_id=cmid),
        create_room=True,
        join_public=True,
    )


def strict(room: str, user: str, text: str, cmid: str | None = None) -> AppendRequest:
    """A send with nothing on the way: the room and the membership must exist."""
    return AppendRequest(
        NewMessage(room_id=room, user_id=user, username=user, text=text, client_msg_id=cmid)
    )


def revs(entries: list[Entry]) -> list[int]:
    return [e.rev or 0 for e in entries]


def channel(entry: Entry) -> str:
    """The room (or personal channel) an entry of the log belongs to."""
    return entry.message.room_id if isinstance(entry, LoggedMessage) else entry.room_id


async def sql(store: SqlStore, statement: str, **params: Any) -> Any:
    """Run raw SQL in a write transaction: set up what the API cannot (an old row, a trigger)
    or look at what it does not show (how many log rows)."""

    def work(conn: Any) -> Any:
        result = conn.execute(sa.text(statement), params)
        return result.scalar() if result.returns_rows else None

    return await store.db.write(work)


async def poison(s: SqlStore, table: str, when: str, event: str = "INSERT") -> None:
    """A trigger that refuses the rows of ``table`` for which ``when`` holds (``NEW.…``)."""
    if s.db.dialect == "sqlite":
        statements = [
            f"CREATE TRIGGER poison_{table} BEFORE {event} ON {table} WHEN {when} "
            "BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
        ]
    else:
        statements = [
            f"CREATE FUNCTION poison_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF {when} THEN RAISE EXCEPTION 'poisoned' USING ERRCODE = '23514'; "
            "END IF; RETURN NEW; END $$",
            f"CREATE TRIGGER poison_{table} BEFORE {event} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION poison_{table}()",
        ]

    def work(conn: Any) -> None:
        for statement in statements:
            conn.execute(sa.text(statement))

    await s.db.write(work)
