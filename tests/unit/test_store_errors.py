"""Which database failures are "the store is away" (503, retry) and which are the statement's
own (a 4xx for the caller, or a bug): the chaos checker found PostgreSQL's "the database system
is starting up" (57P03) answered as 500 and as 422 before this."""

from __future__ import annotations

import sqlalchemy as sa

from hubbub.store.sql import store_away


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _wrapped(sqlstate: str, kind: type[sa.exc.DBAPIError] = sa.exc.DBAPIError) -> BaseException:
    return kind("SELECT 1", {}, _DriverError(sqlstate))


def test_server_side_conditions_are_the_store_being_away() -> None:
    for state in ("57P03", "57P01", "08006", "08003", "53300"):
        assert store_away(_wrapped(state)), state
    assert store_away(ConnectionResetError())
    assert store_away(TimeoutError())


def test_statement_errors_are_not() -> None:
    for state in ("23505", "22001", "42P01", "40001"):
        assert not store_away(_wrapped(state)), state
    assert not store_away(_wrapped("23505", sa.exc.IntegrityError))
    assert not store_away(ValueError("bad"))
