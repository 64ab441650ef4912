"""``GET /chat/room/{room_id}/poll?after=&timeout=``: the fallback for networks where streams
do not survive. Answers at once when there is something after ``after``; otherwise the request
waits on the hub (no timer per client, no database query while waiting) until a message
arrives or ``timeout`` passes (then ``[]``). The response is the messages' stored JSON, the
same bytes the streams carry.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

from hubbub.api.raw import Receive, Scope, Send, credentials, query, send_error, send_json
from hubbub.encoding import to_json
from hubbub.errors import HubbubError, Invalid, Unavailable
from hubbub.hub import Connection

if TYPE_CHECKING:
    from hubbub.runtime import Runtime

MAX_TIMEOUT = 60.0
DEFAULT_TIMEOUT = 25.0
MAX_LIMIT = 200


class _Parked:
    """A waiting poll has no socket for the hub to write to; it only wants to be woken."""

    write_paused = False

    def write(self, data: bytes) -> None:
        return None

    def close(self) -> None:
        return None

    def abort(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False

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


async def poll(rt: Runtime, scope: Scope, receive: Receive, send: Send, room_id: str) -> None:
    params = query(scope)
    try:
        if rt.hub.closing:
            raise Unavailable("the server is shutting down; retry", code="shutting_down")
        after_f = _number(params, "after", None, 2**53)
        if after_f is not None and after_f != int(after_f):
            raise Invalid("after must be a message seq", code="invalid_field")
        timeout = _number(params, "timeout", DEFAULT_TIMEOUT, MAX_TIMEOUT)
        limit = int(_number(params, "limit", 100, MAX_LIMIT) or 1)
        who = await rt.auth.identify(credentials(scope, params), ensure_user=False)
        room = await rt.service.open_room(who, room_id)
    except HubbubError as exc:
        await send_error(send, exc)
        return

    parked = _Parked()
    conn = Connection(parked, parked, who.user_id, "poll")
    woken = asyncio.get_running_loop().create_future()

    def wake() -> None:
        if not woken.done():
            woken.set_result(None)

    conn.on_end = wake  # shutdown answers every waiting poll at once
    conn.wake = wake
    gauge = rt.metrics.connections.labels("longpoll")
    gauge.inc()
    conn_id = uuid.uuid4().hex
    await rt.service.presence.connect(who.user_id, conn_id)
    try:
        await rt.hub.attach(conn, room_id, replaying=True)
        head = max(room.last_seq, rt.hub.head(room_id))
        # No `after`: the next message. A cursor from the future (another database): now.
        after = head if after_f is None else min(int(after_f), head)
        found = await rt.store.history(room_id, after=after, limit=limit)
        if found:
            body = to_json(found)
        else:
            body = b"[]"
            deadline = asyncio.get_running_loop().time() + (timeout or 0)
            while True:
                fresh = [
                    e for e in rt.hub.pending(conn, room_id) if e.seq is not None and e.seq > after
                ][:limit]
                if fresh:
                    body = b"[" + b",".join([e.data for e in fresh]) + b"]"
                    break
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0 or rt.hub.closing:
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
        gauge.dec()
        await rt.hub.detach(conn)
        await rt.service.presence.disconnect(who.user_id, conn_id)
    await send_json(send, 200, body)
