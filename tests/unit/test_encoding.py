from __future__ import annotations

from hubbub.encoding import Event, chunk, sse_named
from hubbub.models import Message


def msg(text: str) -> Message:
    return Message(
        id="m1",
        room_id="r",
        seq=7,
        user_id="u",
        username="u",
        type="text",
        text=text,
        created_at="2026-01-01T00:00:00.000Z",
    )


def test_message_frame_has_id_and_no_event_line() -> None:
    frame = Event.message(msg("hi")).sse
    assert frame.startswith(b"id: 7\ndata: {")
    assert b"event:" not in frame
    assert frame.endswith(b"\n\n")


def test_text_with_newlines_stays_on_one_data_line() -> None:
    frame = Event.message(msg("a\nb\r\n\n<script>")).sse
    assert frame.count(b"\n") == 3  # id line, data line, blank line
    assert b"<script>" in frame


def test_frame_is_encoded_once_and_shared() -> None:
    e = Event.message(msg("x"))
    assert e.sse is e.sse


def test_wire_round_trip_keeps_bytes() -> None:
    e = Event.message(msg("ü 👍"))
    back = Event.from_wire(e.wire())
    assert (back.room_id, back.name, back.seq, back.data) == ("r", "message", 7, e.data)
    assert back.sse == e.sse


def test_named_event_and_chunking() -> None:
    assert sse_named("typing", {"a": 1}) == b'event: typing\ndata: {"a":1}\n\n'
    assert chunk(b"hello") == b"5\r\nhello\r\n"
