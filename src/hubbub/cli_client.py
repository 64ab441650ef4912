"""The command-line client on the SDK: login, rooms, send, tail, history, notify.

Credentials live in ``$XDG_CONFIG_HOME/hubbub/credentials.json`` (0600 in a 0700 directory),
one entry per server, and the refreshed tokens are written back after every run: refresh
tokens are single-use, so a stale file would sign the user out."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import msgspec
import typer

from hubbub.client import (
    DEFAULT_URL,
    AsyncHubbub,
    AsyncServerClient,
    Connected,
    Event,
    HubbubError,
    Message,
    NewMessage,
    Tokens,
)

T = TypeVar("T")
Opt = typer.Option
Server = Annotated[
    str | None, Opt("--server", help=f"server URL [HUBBUB_URL, the last login, {DEFAULT_URL}]")
]
AsJson = Annotated[bool, Opt("--json", help="one JSON object per line, for scripts")]


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hubbub"


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


def load_credentials() -> dict[str, Any]:
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"servers": {}}
    except (OSError, ValueError) as exc:
        fail(f"cannot read {path}: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("servers"), dict):
        fail(f"{path} is not a Hubbub credentials file; delete it and log in again")
    return dict(data)


def save_credentials(data: dict[str, Any]) -> None:
    """Written to a temporary file created 0600 and renamed over, so the secret is never
    readable by others, not even for a moment, and a crash leaves the old file whole."""
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    tmp = directory / f".credentials.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, credentials_path())


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def server_url(given: str | None) -> str:
    url = given or os.environ.get("HUBBUB_URL") or load_credentials().get("current") or DEFAULT_URL
    return str(url).rstrip("/")


def make_client(given: str | None) -> AsyncHubbub:
    """A client for the server with the stored credentials; ``HUBBUB_TOKEN`` or
    ``HUBBUB_USER_ID`` (trust mode) override them."""
    url = server_url(given)
    entry: dict[str, Any] = load_credentials()["servers"].get(url, {})

    def keep(tokens: Tokens) -> None:
        data = load_credentials()
        data["servers"].setdefault(url, {}).update(
            access_token=tokens.access_token, refresh_token=tokens.refresh_token
        )
        save_credentials(data)

    if os.environ.get("HUBBUB_TOKEN"):
        return AsyncHubbub(url, token=os.environ["HUBBUB_TOKEN"])
    if os.environ.get("HUBBUB_USER_ID"):
        return AsyncHubbub(url, user_id=os.environ["HUBBUB_USER_ID"])
    if entry.get("access_token"):
        return AsyncHubbub(
            url,
            token=entry["access_token"],
            refresh_token=entry.get("refresh_token"),
            user_id=entry.get("user_id"),
            on_tokens=keep,
        )
    if entry.get("user_id"):
        return AsyncHubbub(url, user_id=entry["user_id"])
    fail(f"not logged in to {url}: run 'hubbub login' first")


def run(work: Awaitable[T]) -> T:
    """Run the command; any refusal or an unreachable server is one line on stderr and exit 1."""
    try:
        return asyncio.run(_guard(work))
    except HubbubError as exc:
        fail(exc.message if exc.status == 0 else f"{exc.message} ({exc.status} {exc.code})")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def _guard(work: Awaitable[T]) -> T:
    import httpx

    try:
        return await work
    except httpx.TransportError as exc:
        raise HubbubError(0, "unreachable", f"cannot reach the server: {exc!r}") from exc


def out_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")
    sys.stdout.flush()


def _console() -> Any:
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - rich comes with typer
        return None
    return Console(highlight=False)


def show_message(console: Any, m: Message, *, room: bool = False) -> None:
    when = m.created_at[11:19]
    where = f"#{m.room_id} " if room else ""
    text = "(deleted)" if m.deleted else m.text
    if m.file is not None:
        text = f"{text} [file {m.file.name}, {m.file.size} bytes]".strip()
    if console is None:
        print(f"[{when}] {where}{m.username}: {text}", flush=True)
        return
    from rich.text import Text

    line = Text()
    line.append(f"[{when}] ", style="dim")
    line.append(where, style="cyan")
    line.append(f"{m.username}", style="bold")
    line.append(": ")
    line.append(text)  # as text, never markup: a message cannot style the terminal
    console.print(line, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(logout)
    app.command()(rooms)
    app.command()(send)
    app.command()(tail)
    app.command()(history)
    app.command()(notify)


def login(
    server: Server = None,
    username: Annotated[str | None, Opt(help="jwt mode: your username (prompted)")] = None,
    password: Annotated[
        str | None, Opt(help="jwt mode: password (prompted, or read from stdin)")
    ] = None,
    user_id: Annotated[
        str | None, Opt("--user-id", help="trust mode: act as this user id (no password)")
    ] = None,
) -> None:
    """Sign in and keep the credentials (0600) for the other commands."""
    url = server_url(server)
    if user_id is not None:
        entry: dict[str, Any] = {"mode": "trust", "user_id": user_id}

        async def check_trust() -> str:
            async with AsyncHubbub(url, user_id=user_id) as c:
                return (await c.me()).username

        name = run(check_trust())
    else:
        if username is None:
            username = typer.prompt("username") if sys.stdin.isatty() else None
            if not username:
                fail("--username is required")
        if password is None:
            password = (
                getpass.getpass("password: ")
                if sys.stdin.isatty()
                else sys.stdin.readline().rstrip("\n")
            )

        async def sign_in() -> Tokens:
            async with AsyncHubbub(url) as c:
                return await c.sign_in(str(username), str(password))

        tokens = run(sign_in())
        name = tokens.username
        entry = {
            "mode": "jwt",
            "user_id": tokens.user_id,
            "username": tokens.username,
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
        }
    data = load_credentials()
    data["servers"][url] = entry
    data["current"] = url
    save_credentials(data)
    typer.echo(f"logged in to {url} as {name} (credentials in {credentials_path()})")


def logout(server: Server = None) -> None:
    """End the session on the server and forget the credentials."""
    url = server_url(server)
    data = load_credentials()
    entry = data["servers"].pop(url, None)
    if entry is None:
        fail(f"not logged in to {url}")
    if entry.get("refresh_token"):

        async def end() -> None:
            async with AsyncHubbub(
                url, token=entry.get("access_token"), refresh_token=entry["refresh_token"]
            ) as c:
                with contextlib.suppress(HubbubError):
                    await c.logout()

        run(end())
    if data.get("current") == url:
        data.pop("current")
    save_credentials(data)
    typer.echo(f"logged out of {url}")


def rooms(server: Server = None, as_json: AsJson = False) -> None:
    """Your rooms (with unread counts) and the public ones."""

    async def work() -> None:
        async with make_client(server) as c:
            listed = await c.rooms()
        if as_json:
            for room in listed:
                out_json(room)
            return
        for room in listed:
            unread = f"  {room.unread} unread" if room.unread else ""
            mark = "*" if room.member else " "
            typer.echo(f"{mark} {room.id:<24} {room.name} ({room.visibility}){unread}")

    run(work())


def send(
    room: str,
    text: Annotated[str | None, typer.Argument(help="the message; absent or '-': stdin")] = None,
    server: Server = None,
    as_json: AsJson = False,
) -> None:
    """Send TEXT to ROOM, or each line of stdin as one message (empty lines skipped)."""

    async def work() -> None:
        async with make_client(server) as c:
            if text is not None and text != "-":
                lines: Any = [text]
            else:
                lines = (line.rstrip("\r\n") for line in sys.stdin)
            for line in lines:
                if text is None and not line.strip():
                    continue
                message = await c.send(room, line)
                if as_json:
                    out_json(message)

    run(work())


def tail(
    room: Annotated[list[str], typer.Argument(help="room ids")],
    server: Server = None,
    as_json: AsJson = False,
    since: Annotated[
        str | None, Opt(help="resume after this event id (from a --json line's 'id')")
    ] = None,
) -> None:
    """Follow ROOMs live (joining any you are not in); reconnects and resumes by itself.

    --json prints {"event", "id", "data"} per line."""
    wanted = set(room)

    async def work() -> None:
        async with make_client(server) as c:
            mine = {r.id for r in await c.rooms() if r.member}
            for rid in room:
                if rid not in mine:
                    await c.join(rid)
                    typer.echo(f"joined {rid}", err=True)
            console = None if as_json else _console()
            async for event in c.stream(since):
                if isinstance(event, Connected):
                    typer.echo(f"listening to {', '.join(room)}", err=True)
                    continue
                if not _of(event, wanted):
                    continue
                if as_json:
                    out_json(_as_wire(event))
                elif isinstance(event, NewMessage):
                    show_message(console, event.message, room=len(room) > 1)

    run(work())


def _of(event: Event, rooms: set[str]) -> bool:
    message = getattr(event, "message", None)
    if isinstance(message, Message):
        return message.room_id in rooms
    room = getattr(event, "room", None)
    rid = getattr(room, "id", None) or getattr(event, "room_id", None)
    return rid in rooms


_NAMES = {
    "NewMessage": "message",
    "MessageEdited": "message_edited",
    "MessageDeleted": "message_deleted",
    "MemberJoined": "member_joined",
    "MemberLeft": "member_left",
    "RoomAdded": "room_added",
    "RoomRemoved": "room_removed",
    "RoomUpdated": "room_updated",
    "RoomCreated": "room_created",
}


def _as_wire(event: Event) -> dict[str, Any]:
    """The event as the server streamed it: ``{"event", "id", "data"}`` (the long-poll shape)."""
    fields = msgspec.structs.asdict(event)
    cursor = fields.pop("cursor")
    kind = type(event).__name__
    name = _NAMES.get(kind, kind.lower())
    if "message" in fields and isinstance(fields["message"], Message):
        data: Any = fields["message"]
    elif "room" in fields and kind != "Typing":
        data = fields["room"]
    elif kind == "Unknown":
        name, data = fields["event"], fields["data"]
    else:
        data = fields
    return {"event": name, "id": cursor, "data": data}


def history(
    room: str,
    server: Server = None,
    limit: Annotated[int, Opt(help="how many (max 200)")] = 50,
    before: Annotated[int | None, Opt(help="only messages before this seq")] = None,
    as_json: AsJson = False,
) -> None:
    """The newest messages of ROOM, oldest first."""

    async def work() -> None:
        async with make_client(server) as c:
            messages = await c.history(room, limit=limit, before=before)
        console = None if as_json else _console()
        for m in messages:
            if as_json:
                out_json(m)
            else:
                show_message(console, m)

    run(work())


def notify(
    user: Annotated[str, typer.Argument(help="user id")],
    event: Annotated[str, typer.Argument(help="your event type, e.g. order.shipped")],
    data: Annotated[str, typer.Argument(help="JSON data")],
    server: Server = None,
    server_key: Annotated[
        str | None, Opt(help="server key [HUBBUB_SERVER_KEY]", envvar="HUBBUB_SERVER_KEY")
    ] = None,
) -> None:
    """Send USER a notification through the server API (needs the server key)."""
    try:
        payload = json.loads(data)
    except ValueError as exc:
        fail(f"JSON is not valid JSON: {exc}", 2)
    if not server_key:
        fail("the server API needs --server-key or HUBBUB_SERVER_KEY", 2)

    async def work() -> None:
        async with AsyncServerClient(server_url(server), str(server_key)) as api:
            sent = await api.notify(user, event, payload)
        out_json(sent)

    run(work())
