"""Hypothesis over the parsers that read what clients send, beyond the JSON decoders that
``tests/unit/test_decoders.py`` covers: stream cursors (``Last-Event-ID``, ``?last_event_id=``,
``?after=``, ``after_seq``), the streaming ``multipart/form-data`` reader, upload file names and
the WebSocket ops' typed fields.

Whatever arrives, the answer is a value or a 4xx :class:`HubbubError` — any other exception is
a 5xx or a dropped connection. Where a parser has an inverse, the round trip holds.
``HUBBUB_FUZZ_EXAMPLES`` scales the runs (``make fuzz``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from hubbub.api.multipart import UploadReader, multipart_boundary
from hubbub.api.send import decode_send_body
from hubbub.encoding import cursor, parse_cursor, room_cursor, to_json
from hubbub.errors import HubbubError
from hubbub.files.names import MAX_NAME_BYTES, content_disposition, safe_filename
from hubbub.models import MAX_SEQ
from hubbub.transports.events import parse_events_cursor
from hubbub.transports.resume import parse_room_cursor
from hubbub.transports.websocket import decode_op

# The suite's run is bounded; `make fuzz` raises HUBBUB_FUZZ_EXAMPLES for a longer one.
SCALE = max(1, int(os.environ.get("HUBBUB_FUZZ_EXAMPLES", "25")) // 25)
PROPERTY = settings(
    database=None,
    deadline=None,
    max_examples=200 * SCALE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def assert_client_error(exc: HubbubError, status: int | None = None) -> None:
    assert 400 <= exc.status < 500, (exc.status, exc.code, exc.message)
    assert status is None or exc.status == status, (exc.status, exc.code, exc.message)
    body = exc.body()
    assert set(body) == {"error"} and exc.code and exc.message
    to_json(body)


# What a header (latin-1), a query parameter (UTF-8 after percent-decoding) or a JSON string can
# carry: digits of every script (`"²".isdigit()` is true, `int("²")` fails), signs, spaces.
_cursor_piece = st.sampled_from(
    ["g", "r", "0", "1", "9", "²", "³", "¹", "٣", "߀", "０", "-", "+", " ", "_", "e", "\x00", "\n"]
)
# A prefix, then "digits" of any script: what `str.isdigit` says yes to is not what `int` reads.
_numberish = st.builds(
    str.__add__,
    st.sampled_from(["g", "r", "", " g", "g-", "r+"]),
    st.text(alphabet=st.characters(categories=["Nd", "No"]) | st.sampled_from("0123456789")).filter(
        bool
    ),
)
cursor_text = (
    _numberish
    | st.text(max_size=30)
    | st.text(alphabet=st.characters(codec="latin-1"), max_size=24)
    | st.lists(_cursor_piece, max_size=24).map("".join)
    | st.integers(min_value=0, max_value=2**64).map(lambda n: f"g{n}")
    | st.integers(min_value=0, max_value=2**64).map(lambda n: f"r{n}")
)


# Stream cursors -------------------------------------------------------------------------------


@PROPERTY
@given(cursor_text)
@example("g²")  # found by this test: ValueError out of int(), a 500 on /chat/events
@example("g\u00b9\u00b3")
@example("g٣")
@example(" g12 ")
def test_events_cursor_is_a_position_or_400(value: str) -> None:
    """``/chat/events`` and the WebSocket's ``?after=``: ``Last-Event-ID`` / ``last_event_id``."""
    try:
        position = parse_events_cursor(value)
    except HubbubError as exc:
        assert_client_error(exc, 400)
        assert exc.code == "invalid_cursor"  # noqa: PT017
        return
    if position is not None:
        assert type(position) is int and 0 <= position < 2**63, position
        assert value.strip().startswith("g") and value.strip()[1:].isascii()


@PROPERTY
@given(st.integers(min_value=0, max_value=MAX_SEQ - 1))  # stream positions are below 2^53
@example(0)
@example(MAX_SEQ - 1)
def test_events_cursor_round_trip(position: int) -> None:
    assert parse_cursor(cursor(position)) == position
    assert parse_events_cursor(" " + cursor(position) + " ") == position


@PROPERTY
@given(cursor_text | st.integers(min_value=-(2**70), max_value=2**70) | st.booleans() | st.none())
@example("r²")
@example("²")
@example(True)
@example(2**53)
@example(2**53 + 1)
def test_room_cursor_is_a_seq_or_a_rev_or_400(value: str | int | None) -> None:
    """Room streams' ``Last-Event-ID``, long-poll's ``after`` (``changes=1``), the WebSocket's
    ``after_seq``: a seq or ``r<rev>``, within 2^53."""
    try:
        parsed = parse_room_cursor(value)
    except HubbubError as exc:
        assert_client_error(exc, 400)
        assert exc.code == "invalid_cursor"  # noqa: PT017
        return
    if parsed is None:
        assert value is None or str(value).strip() == ""
        return
    kind, number = parsed
    assert kind in ("seq", "rev") and 0 <= number <= MAX_SEQ
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if kind == "rev" else text
        assert kind == "seq" or text.startswith("r")
        assert digits.isascii() and digits.isdigit() and int(digits) == number


@PROPERTY
@given(st.integers(min_value=0, max_value=MAX_SEQ))
def test_room_cursor_round_trip(n: int) -> None:
    assert parse_room_cursor(room_cursor(n)) == ("rev", n)
    assert parse_room_cursor(str(n)) == ("seq", n)
    assert parse_room_cursor(n) == ("seq", n)


# The multipart reader -------------------------------------------------------------------------


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(body[last:p])
        last = p
    pieces.append(body[last:])
    return [p for p in pieces if p]


async def _read_upload(
    pieces: list[bytes], boundary: bytes, *, max_body: int = 1 << 20
) -> tuple[bool, bytes, UploadReader]:
    reader = UploadReader(
        _chunks(pieces),
        boundary,
        file_field="file",
        fields=frozenset({"message"}),
        max_field_bytes=4 * 4000,
        max_body_bytes=max_body,
    )
    found = await reader.find_file()
    data = b""
    if found:
        data = b"".join([c async for c in reader.file_chunks()])
        await reader.finish()
    return found, data, reader


def read_upload(
    pieces: list[bytes], boundary: bytes, *, max_body: int = 1 << 20
) -> tuple[bool, bytes, UploadReader]:
    return asyncio.run(_read_upload(pieces, boundary, max_body=max_body))


_boundaries = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'()+_,-./:=?",
    min_size=1,
    max_size=70,
).map(str.encode)

_multipart_piece = st.sampled_from(
    [
        b"--B",
        b"--B\r\n",
        b"--B--",
        b"--B--\r\n",
        b"\r\n",
        b"\r",
        b"\n",
        b'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n',
        b'Content-Disposition: form-data; name="message"\r\n',
        b"Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''%E2%82%AC\r\n",
        b"Content-Disposition: attachment\r\n",
        b"Content-Type: text/plain\r\n",
        b"content-disposition:form-data;name=file\r\n",
        b": \r\n",
        b"X" * 40,
        b"\xff\xfe\xed\xa0\x80",
        b"hello",
        b"--",
        b"\x00",
    ]
)
hostile_multipart = st.binary(max_size=400) | st.lists(_multipart_piece, max_size=40).map(b"".join)


@PROPERTY
@given(hostile_multipart, st.lists(st.integers(min_value=0, max_value=500), max_size=6))
@example(b'--B\r\nContent-Disposition: form-data; name="message"\r\n\r\n\xff\r\n--B--\r\n', [])
@example(b"--B\r\n" + b"X: " + b"y" * 20_000 + b"\r\n\r\n", [7])
@example(b'--B\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc', [3, 9])
def test_multipart_reader_answers_any_body(body: bytes, cuts: list[int]) -> None:
    """Any body, cut anywhere: the file and fields, or 400/413/422 — nothing else."""
    try:
        found, data, reader = read_upload(_split(body, cuts), b"B", max_body=4096)
    except HubbubError as exc:
        assert_client_error(exc)
        return
    if not found:
        assert data == b"" and not reader.has_file
    for value in reader.fields.values():
        value.encode("utf-8")  # strict: text, never a lone surrogate


_names = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters='"\\\r\n'),
    max_size=40,
)


@PROPERTY
@given(
    boundary=_boundaries,
    content=st.binary(max_size=2000),
    filename=_names,
    caption=st.none() | st.text(max_size=200),
    caption_first=st.booleans(),
    noise=st.lists(st.binary(max_size=50), max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=12),
)
def test_multipart_round_trip(
    boundary: bytes,
    content: bytes,
    filename: str,
    caption: str | None,
    caption_first: bool,
    noise: list[bytes],
    cuts: list[int],
) -> None:
    """What a browser's ``FormData`` sends comes out byte for byte, however the body is cut
    into chunks, with other parts around (ignored)."""
    delimiter = b"\r\n--" + boundary
    for part in (content, caption.encode() if caption else b"", *noise):
        assume(delimiter not in b"\r\n" + part + b"\r\n")
    file_part = (
        b'Content-Disposition: form-data; name="file"; filename="'
        + filename.encode()
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + content
    )
    parts = [file_part]
    if caption is not None:
        caption_part = b'Content-Disposition: form-data; name="message"\r\n\r\n' + caption.encode()
        parts.insert(0 if caption_first else 1, caption_part)
    parts += [
        b'Content-Disposition: form-data; name="other%d"\r\n\r\n' % i + n
        for i, n in enumerate(noise)
    ]
    body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
    body += b"--" + boundary + b"--\r\n"

    found, data, reader = read_upload(_split(body, cuts), boundary)
    assert found and data == content
    assert reader.filename == filename
    assert reader.fields == ({} if caption is None else {"message": caption})


@PROPERTY
@given(st.text(alphabet=st.characters(codec="latin-1"), max_size=120))
@example("multipart/form-data; boundary=")
@example('multipart/form-data; boundary="a b"')
@example("multipart/form-data; boundary=" + "x" * 201)
@example("MULTIPART/FORM-DATA; BOUNDARY=abc")
def test_multipart_boundary_never_raises(content_type: str) -> None:
    """Any ``Content-Type`` header (HTTP headers are latin-1 text)."""
    boundary = multipart_boundary(content_type)
    assert boundary is None or 0 < len(boundary) <= 200


# Upload file names ------------------------------------------------------------------------------


@PROPERTY
@given(st.none() | st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=400))
@example("../../etc/passwd")
@example("\u202egnp.exe")
@example("." * 300)
@example("é" * 200 + ".tar.gz")
def test_file_names_are_safe_to_store_and_to_put_in_a_header(raw: str | None) -> None:
    name = safe_filename(raw)
    assert name and len(name.encode()) <= MAX_NAME_BYTES
    assert "/" not in name and "\\" not in name
    assert not name.startswith(".") and name == name.strip()
    assert all(ord(ch) >= 0x20 and ch != "\x7f" for ch in name)
    for kind in ("inline", "attachment"):
        header = content_disposition(kind, name)
        header.encode("ascii")  # any HTTP stack can send it
        assert "\r" not in header and "\n" not in header


# WebSocket ops: typed fields ---------------------------------------------------------------------

_op_names = st.sampled_from(["subscribe", "unsubscribe", "send", "typing", "read", "ping", "x"])
_field_values = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | cursor_text
    | st.lists(st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)
ws_frames = st.fixed_dictionaries(
    {"op": _op_names | _field_values},
    optional={
        "ref": _field_values,
        "room_id": _field_values,
        "after_seq": _field_values,
        "message": _field_values,
        "client_msg_id": _field_values,
        "timestamp": _field_values,
        "is_typing": _field_values,
        "seq": _field_values,
    },
)


@PROPERTY
@given(ws_frames)
@example({"op": "subscribe", "room_id": "r", "after_seq": "r²"})
@example({"op": "read", "room_id": "r", "seq": 2**53})
@example({"op": "read", "room_id": "r", "seq": 2**53 + 1})
@example({"op": "subscribe", "room_id": "r", "after_seq": True})
def test_websocket_op_fields(frame: dict[str, Any]) -> None:
    """A frame that decodes is an op whose fields have their documented types and ranges, and
    its cursor parses (or is a 400) — what ``WebSocketSession._dispatch`` relies on."""
    text = json.dumps(frame)
    try:
        op = decode_op(text)
    except HubbubError as exc:
        assert_client_error(exc)
        return
    assert isinstance(op.op, str)
    assert op.room_id is None or isinstance(op.room_id, str)
    assert op.message is None or isinstance(op.message, str)
    assert op.is_typing is None or isinstance(op.is_typing, bool)
    assert op.seq is None or (type(op.seq) is int and 0 <= op.seq <= MAX_SEQ)
    if isinstance(op.after_seq, int):
        assert type(op.after_seq) is int and 0 <= op.after_seq <= MAX_SEQ
    try:
        parse_room_cursor(op.after_seq)
    except HubbubError as exc:
        assert_client_error(exc, 400)


# The send body: round trip ----------------------------------------------------------------------

_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=50)


@PROPERTY
@given(
    room_id=_text,
    message=_text,
    timestamp=st.none()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    client_msg_id=st.none() | _text,
    ascii_only=st.booleans(),
)
def test_send_body_round_trip(
    room_id: str, message: str, timestamp: Any, client_msg_id: str | None, ascii_only: bool
) -> None:
    """Whatever a client encodes, the server reads back exactly (``\\u`` escapes included)."""
    raw = json.dumps(
        {
            "room_id": room_id,
            "message": message,
            "timestamp": timestamp,
            "client_msg_id": client_msg_id,
        },
        ensure_ascii=ascii_only,
    ).encode()
    body = decode_send_body(raw)
    assert (body.room_id, body.message, body.client_msg_id) == (room_id, message, client_msg_id)
    assert body.timestamp == timestamp


@pytest.mark.parametrize(
    "raw",
    [
        b'{"room_id": "r", "message": "\\ud800"}',
        b'{"room_id": "r", "message": "x\\udfff"}',
        b'{"room_id": "\\udc00", "message": "hi"}',
        b'{"room_id": "r", "message": "hi", "client_msg_id": "\\ud83d"}',
    ],
)
def test_lone_surrogates_are_malformed(raw: bytes) -> None:
    with pytest.raises(HubbubError) as caught:
        decode_send_body(raw)
    assert caught.value.status == 400 and caught.value.code == "malformed_json"
