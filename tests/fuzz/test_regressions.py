"""What the fuzzers found, as a client sees it, so it stays fixed.

* ``Last-Event-ID: g²`` (``tests/fuzz/test_decoders.py``, Hypothesis over the cursor parsers):
  ``str.isdigit`` says yes to ``"²"`` (a latin-1 header byte, ``\\xb2``, or ``%C2%B2`` in a
  query), ``int`` does not — a ``ValueError`` out of ``parse_cursor``, so ``GET /chat/events``
  answered a plain-text 500 and the WebSocket's ``?after=`` dropped the handshake. Now 400
  ``invalid_cursor`` in the error shape, and an ``error`` frame.
"""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support import Server, assert_error

# Digits ``str.isdigit`` accepts and ``int`` refuses (superscripts), or reads as another number.
ODD_DIGITS = ["²", "¹³", "٣", "０"]


def _raw_request(server: Server, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head)
        out = b""
        while b"\r\n\r\n" not in out or not out.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


@pytest.mark.parametrize("digits", ODD_DIGITS)
async def test_events_cursor_of_other_digits_is_400(trust_server: Server, digits: str) -> None:
    async with httpx.AsyncClient(base_url=trust_server.url, timeout=10) as http:
        r = await http.get(
            "/chat/events", params={"last_event_id": "g" + digits}, headers={"User-ID": "odd"}
        )
        assert_error(r, 400, "invalid_cursor")


def test_last_event_id_header_with_a_latin1_digit_is_400(trust_server: Server) -> None:
    answer = _raw_request(
        trust_server,
        b"GET /chat/events HTTP/1.1\r\nHost: localhost\r\nUser-ID: odd\r\n"
        b"Last-Event-ID: g\xb2\r\nConnection: close\r\n\r\n",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer[:300]
    assert json.loads(body)["error"]["code"] == "invalid_cursor"


async def test_websocket_after_of_other_digits_is_an_error_frame(trust_server: Server) -> None:
    url = trust_server.url.replace("http://", "ws://") + "/chat/ws?user_id=odd&after=g%C2%B2"
    async with connect(url, open_timeout=10) as ws:
        frame = json.loads(await ws.recv())
        assert frame["event"] == "error" and frame["data"]["code"] == "invalid_cursor", frame
        await ws.wait_closed()
        assert ws.close_code == 1008
    assert "Traceback" not in trust_server.log()
