"""Hypothesis over a live ``/chat/ws``: sequences of client frames — ops with fields of every
type and range, cursors of every script, text that is not JSON, binary frames — sent on one
connection of a real trust-mode server.

API.md "Details clients rely on" / "Limits and abuse": each frame is answered by exactly one
reply (``ack``, ``subscribed``, ``unsubscribed``, ``ok``, ``pong`` or ``error``), in order,
carrying the frame's ``ref``; an error is ``{"code", "message"}`` and never the server's own
failure (``internal_error``); the connection stays usable (a final ``ping`` is answered) and
the server logs no traceback. ``HUBBUB_FUZZ_EXAMPLES`` scales the run (``make fuzz``).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from tests.fuzz.test_decoders import cursor_text
from tests.support import Server

SCALE = max(1, int(os.environ.get("HUBBUB_FUZZ_EXAMPLES", "25")) // 25)
REPLIES = {"ack", "subscribed", "unsubscribed", "ok", "pong", "error"}

_rooms = st.sampled_from(["fuzz-ws", "fuzz-ws-2"]) | st.text(max_size=12)
_anything = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.lists(st.integers(), max_size=2)
)
_seq = st.integers(min_value=-2, max_value=2**64) | st.sampled_from([2**53, 2**53 + 1]) | _anything


@st.composite
def ops(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(["subscribe", "unsubscribe", "send", "typing", "read", "ping"]))
    frame: dict[str, Any] = {"op": draw(st.just(op) | _anything)}
    if draw(st.booleans()):
        frame["room_id"] = draw(_rooms | _anything)
    if op == "subscribe" and draw(st.booleans()):
        frame["after_seq"] = draw(cursor_text | _seq)
    if op == "send":
        frame["message"] = draw(st.text(max_size=30) | _anything)
        if draw(st.booleans()):
            frame["client_msg_id"] = draw(st.text(max_size=8) | _anything)
        if draw(st.booleans()):
            frame["timestamp"] = draw(_anything)
    if op == "typing":
        frame["is_typing"] = draw(st.booleans() | _anything)
    if op == "read":
        frame["seq"] = draw(_seq)
    if draw(st.booleans()):
        frame["zz_unknown"] = draw(_anything)
    return frame


# What goes on the wire: an op with its index as `ref`, or text that is not an op at all.
frames = st.lists(
    ops().map(lambda f: ("op", f))
    | st.sampled_from(["", "{", "[]", "null", '{"ref": 1', '"\\ud800"', "[" * 70]).map(
        lambda t: ("text", t)
    )
    | st.binary(max_size=20).map(lambda b: ("binary", b)),
    min_size=1,
    max_size=12,
)


async def exchange(server: Server, batch: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    url = server.url.replace("http://", "ws://") + "/chat/ws?user_id=fuzz-ws-user"
    async with connect(url, open_timeout=10, close_timeout=2) as ws:
        for i, (kind, value) in enumerate(batch):
            if kind == "op":
                await ws.send(json.dumps({**value, "ref": i}))
            else:
                await ws.send(value)
        await ws.send(json.dumps({"op": "ping", "ref": "last"}))
        received: list[dict[str, Any]] = []
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            received.append(frame)
            if frame.get("event") == "pong" and frame.get("ref") == "last":
                return received


@settings(
    database=None,
    deadline=None,
    max_examples=40 * SCALE,
    suppress_health_check=list(HealthCheck),
)
@given(batch=frames)
def test_every_frame_gets_one_reply_in_order(trust_server: Server, batch: list[Any]) -> None:
    received = asyncio.run(exchange(trust_server, batch))
    replies = [f for f in received if f.get("event") in REPLIES][:-1]  # less the last pong
    assert len(replies) == len(batch), (batch, received)
    for i, ((kind, _), reply) in enumerate(zip(batch, replies, strict=True)):
        if kind == "op":
            assert reply.get("ref") == i, (i, batch[i], reply)
        if reply["event"] == "error":
            assert set(reply["data"]) <= {"code", "message", "details"}, reply
            assert reply["data"]["code"] != "internal_error", (batch[i], reply)
            assert isinstance(reply["data"]["message"], str) and reply["data"]["message"]
    assert "Traceback" not in trust_server.log()
