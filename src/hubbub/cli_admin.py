"""Operator commands on the database itself (like ``user create``): ``user list/delete/passwd``
and ``room list/delete``. They need no server running and no key, only the data directory or
database URL; with a server running, its sessions are checked against the same database.

Deleting a user keeps their messages (under their id and name, as the server API's delete
does): history keeps no holes, and a room's other members keep the conversation."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from hubbub.config import Settings
    from hubbub.store.sql import SqlStore

T = TypeVar("T")
Opt = typer.Option
DataDir = Annotated[Path | None, Opt(help="data directory [HUBBUB_DATA_DIR]")]
Database = Annotated[str | None, Opt(help="database URL [HUBBUB_DATABASE]")]
AsJson = Annotated[bool, Opt("--json", help="one JSON object per line")]
Yes = Annotated[bool, Opt("--yes", "-y", help="do not ask for confirmation")]

room_app = typer.Typer(help="Manage rooms.", no_args_is_help=True)


def _fail(message: str, code: int = 1) -> Any:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _with_store(
    data_dir: Path | None, database: str | None, work: Callable[[SqlStore], Awaitable[T]]
) -> T:
    from hubbub.startup import open_store

    settings = _settings(data_dir, database)

    async def run() -> T:
        store = await open_store(settings)  # unreachable: one line, exit code 3
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _settings(data_dir: Path | None, database: str | None) -> Settings:
    from hubbub.startup import load_settings

    return load_settings(data_dir=data_dir, database=database)


def _print_rows(rows: list[dict[str, object]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        import json

        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    for row in rows:
        typer.echo("  ".join(str(row[c]) for c in columns))


async def _find_user(store: SqlStore, who: str) -> tuple[str, str]:
    user = await store.accounts.user_by_id(who)
    if user is None:
        found = await store.accounts.user_by_name(who)
        user = found[0] if found else None
    if user is None:
        _fail(f"no user {who!r} (give an id or a username)")
    assert user is not None
    return user.id, user.username


def _confirm(what: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        _fail(f"{what}: add --yes to confirm", 2)
    if not typer.confirm(f"{what}?"):
        raise typer.Exit(1)


def user_list(data_dir: DataDir = None, database: Database = None, as_json: AsJson = False) -> None:
    """Every user: id, name, whether they have a password, how many rooms they are in."""
    from hubbub.store.sql.admin import SqlAdmin

    rows = _with_store(data_dir, database, lambda s: SqlAdmin(s.db).users())
    _print_rows(rows, as_json, ["id", "username", "created_at", "password", "rooms"])


def user_delete(
    user: Annotated[str, typer.Argument(help="user id or username")],
    yes: Yes = False,
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Delete a user: out of every room (each removal logged, so their devices and the other
    members see it), every session revoked, the account gone. Their messages stay."""

    async def work(store: SqlStore) -> str:
        user_id, name = await _find_user(store, user)
        _confirm(f"delete user {name} ({user_id})", yes)
        for room_id in await store.rooms.room_ids_of(user_id):
            await store.rooms.remove_member(room_id, user_id)
        ended = await store.accounts.delete_user(user_id)
        if ended is None:
            _fail(f"no user {user!r}")
        return f"deleted user {name} ({user_id}); {len(ended or [])} session(s) revoked"

    typer.echo(_with_store(data_dir, database, work))


def user_passwd(
    user: Annotated[str, typer.Argument(help="user id or username")],
    password: Annotated[str | None, Opt(help="the new password (prompted, or stdin)")] = None,
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Set a user's password; every session of theirs is revoked."""
    from hubbub.auth.passwords import hash_password, password_weakness

    async def work(store: SqlStore) -> str:
        user_id, name = await _find_user(store, user)
        new = password
        if new is None:
            if sys.stdin.isatty():
                new = getpass.getpass("new password: ")
                if getpass.getpass("again: ") != new:
                    _fail("the passwords differ", 2)
            else:
                new = sys.stdin.readline().rstrip("\n")
        weakness = password_weakness(new, name)
        if weakness is not None:
            _fail(weakness, 2)
        ended = await store.accounts.set_password(user_id, await hash_password(new))
        return f"password of {name} ({user_id}) set; {len(ended)} session(s) revoked"

    typer.echo(_with_store(data_dir, database, work))


@room_app.command("list")
def room_list(data_dir: DataDir = None, database: Database = None, as_json: AsJson = False) -> None:
    """Every room: id, name, visibility, members, messages."""
    from hubbub.store.sql.admin import SqlAdmin

    rows = _with_store(data_dir, database, lambda s: SqlAdmin(s.db).rooms())
    _print_rows(rows, as_json, ["id", "name", "visibility", "members", "messages"])


@room_app.command("delete")
def room_delete(
    room: Annotated[str, typer.Argument(help="room id")],
    yes: Yes = False,
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Delete a room with its messages and files; each member gets room_removed."""
    from hubbub.files.select import file_store
    from hubbub.store.sql.admin import SqlAdmin

    async def work(store: SqlStore) -> str:
        found = await store.rooms.room(room)
        if found is None:
            _fail(f"no room {room!r}")
        assert found is not None
        _confirm(f"delete room {found.name} ({room}) and its messages", yes)
        for member in await store.rooms.members(room):
            await store.rooms.remove_member(room, member.user_id)
        file_ids = await SqlAdmin(store.db).delete_room(room)
        if file_ids is None:
            _fail(f"no room {room!r}")
        bytes_store = file_store(_settings(data_dir, database))  # HUBBUB_FILES, as serve reads it
        await bytes_store.start()
        try:
            for file_id in file_ids or []:
                await bytes_store.delete(file_id)
        finally:
            await bytes_store.close()
        return f"deleted room {found.name} ({room}) and {len(file_ids or [])} file(s)"

    typer.echo(_with_store(data_dir, database, work))


def register(user_app: typer.Typer, app: typer.Typer) -> None:
    user_app.command("list")(user_list)
    user_app.command("delete")(user_delete)
    user_app.command("passwd")(user_passwd)
    app.add_typer(room_app, name="room")
