"""``GET /chat/room/{room_id}/poll?after=&timeout=``: the fallback for networks where streams
do not survive. Answers at once when there is something after ``after``; otherwise the request
waits on the hub (no timer per client, no database query while waiting) until a message
arrives or ``timeout`` passes (then ``[]``). The response is the messages' stored JSON, the
same bytes the streams carry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from hubbub.api.raw import Receive, Scope, Send, credentials, query, send_error, send_json
from hubbub.encoding import Event, room_cursor, to_json
from hubbub.errors import HubbubError, Invalid, Unavailable
from hubbub.hub import Connection, ConnectionKind
from hubbub.models import MAX_SEQ
from hubbub.transports.resume import StreamLife, parse_room_cursor, read_room_log, room_rev

if TYPE_CHECKING:
    from hubbub.transports.context import StreamDeps

MAX_TIMEOUT = 60.0
DEFAULT_TIMEOUT = 25.0
MAX_LIMIT = 200


class _Parked:
    """A waiting poll has no socket for the hub to write to; it only wants to be woken."""

    write_paused = False
    gone = False  # the client hung up: stop waiting (and give its stream slot back)

    def write(self, data: bytes) -> None:
        return None

    def close(self) -> None:
        return None

    def abort(self) -> None:
        return None

    def is_closing(self) -> bool:
        return self.gone

    async def drain(self) -> None:
        return None


def _number(params: dict[str, str], name: str, default: float | None, high: float) -> float | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise Invalid(f"{name} must be a number", code="invalid_field") from None
    if not 0 <= value <= high:
        raise Invalid(f"{name} must be between 0 and {high:g}", code="invalid_field")
    return value


async def poll(deps: StreamDeps, scope: Scope, receive: Receive, send: Send, room_id: str) -> None:
    params = query(scope)
    life = StreamLife(deps, "longpoll")
    try:
        with life.setting_up():
            if deps.hub.closing:
                raise Unavailable("the server is shutting down; retry", code="shutting_down")
            life.admit()
            changes = params.get("changes", "") in ("1", "true")
            cursor = None
            after_f = None
            if changes:
                cursor = parse_room_cursor(params.get("after"))
            else:
                after_f = _number(params, "after", None, MAX_SEQ)
                if after_f is not None and after_f != int(after_f):
                    raise Invalid("after must be a message seq", code="invalid_field")
            timeout = _number(params, "timeout", DEFAULT_TIMEOUT, MAX_TIMEOUT)
            limit = int(_number(params, "limit", 100, MAX_LIMIT) or 1)
            who = await deps.auth.identify(
                credentials(scope, params), ensure_user=False, allow_ticket=True
            )
            room = await deps.rooms.open_room(who, room_id)
            life.claim(who.user_id)
    except HubbubError as exc:
        await send_error(send, exc)
        return

    parked = _Parked()
    conn = Connection(parked, parked, who.user_id, ConnectionKind.POLL, who.session_id)
    woken = asyncio.get_running_loop().create_future()

    def wake(_code: int = 0) -> None:
        if not woken.done():
            woken.set_result(None)

    conn.on_end = wake  # shutdown (and revocation) answer every waiting poll at once
    watcher: asyncio.Task[None] | None = None
    conn.wake = wake
    try:
        await life.begin(conn)
        await deps.hub.attach(conn, room_id, replaying=True)
        if changes:
            after = (
                deps.hub.head(room_id) if cursor is None else await room_rev(deps, room_id, cursor)
            )
            found, through = await read_room_log(deps, room_id, after, limit)

            def fresh() -> list[Event]:
                return [
                    e
                    for e in deps.hub.pending(conn, room_id)
                    if e.rev is not None and e.rev > through and e.exclude != who.user_id
                ][:limit]
        else:
            head = room.last_seq
            # No `after`: the next message. A cursor from the future (another database): now.
            seq_after = head if after_f is None else min(int(after_f), head)
            messages = await deps.store.messages.history(room_id, after=seq_after, limit=limit)
            found = [Event.message(m) for m in messages]
            through = seq_after

            def fresh() -> list[Event]:
                return [
                    e
                    for e in deps.hub.pending(conn, room_id)
                    if e.seq is not None and e.seq > through
                ][:limit]

        life.settled()  # waiting costs no setup work
        if not found:
            deadline = asyncio.get_running_loop().time() + (timeout or 0)
            watcher = asyncio.get_running_loop().create_task(_hang_up(receive, parked, wake))
            while not deps.hub.closing:
                found = fresh()
                if found:
                    break
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0 or conn.transport.is_closing():
                    break
                woken = asyncio.get_running_loop().create_future()
                try:
                    await asyncio.wait_for(asyncio.shield(woken), remaining)
                except TimeoutError:
                    break
    except HubbubError as exc:
        await send_error(send, exc)
        return
    finally:
        if watcher is not None:
            watcher.cancel()
        await life.end()
    if parked.gone:
        return
    if changes:
        await send_json(send, 200, _changes_body(found, after if not found else None))
    else:
        await send_json(send, 200, b"[" + b",".join([e.data for e in found]) + b"]")


async def _hang_up(receive: Receive, parked: _Parked, wake: Callable[[], None]) -> None:
    """A client that leaves while its poll waits ends the poll at once, not at its timeout:
    its stream slot (and presence) must not outlive it."""
    while (await receive())["type"] != "http.disconnect":
        pass
    parked.gone = True
    wake()


def _changes_body(found: list[Event], after: int | None) -> bytes:
    """``{"events": [{"event", "id", "data"}…], "next": "<id>"}``: ``next`` is the id to poll
    after next time (the last event's, or the cursor the poll was given)."""
    parts = []
    next_id = room_cursor(after or 0)
    for e in found:
        event_id: int | str = e.seq if e.seq is not None else room_cursor(e.rev or 0)
        next_id = str(event_id)
        parts.append(
            b'{"event":%s,"id":%s,"data":%s}' % (to_json(e.name), to_json(event_id), e.data)
        )
    return b'{"events":[%s],"next":%s}' % (b",".join(parts), to_json(next_id))
