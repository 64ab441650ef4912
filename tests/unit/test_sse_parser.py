"""The SDK's SSE parser (``hubbub.client.sse``): any chunking of a valid stream gives the same
events, line endings and comments as the standard says, and garbage raises only ``SSEError``."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.client import NewMessage, SSEError, SSEEvent, SSEParser, Unknown, parse_event

text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"),
    max_size=40,
)
events = st.lists(
    st.tuples(
        st.sampled_from(["message", "typing", "reaction", "x.y"]),
        st.lists(text, min_size=1, max_size=3),
        st.one_of(st.none(), st.text(alphabet="abcdefg0123456789", min_size=1, max_size=12)),
    ),
    max_size=8,
)


def encode(evs: list[tuple[str, list[str], str | None]], newline: str, comments: bool) -> bytes:
    out = [f"retry: 1500{newline}"]
    for name, lines, eid in evs:
        if comments:
            out.append(f": ping{newline}")
        if eid is not None:
            out.append(f"id: {eid}{newline}")
        if name != "message":
            out.append(f"event: {name}{newline}")
        out.extend(f"data: {line}{newline}" for line in lines)
        out.append(newline)
    return "".join(out).encode()


def expected(evs: list[tuple[str, list[str], str | None]]) -> list[SSEEvent]:
    return [SSEEvent(name, "\n".join(lines), eid) for name, lines, eid in evs]


def parse_chunks(raw: bytes, cuts: list[int]) -> tuple[list[SSEEvent], SSEParser]:
    parser = SSEParser()
    got: list[SSEEvent] = []
    bounds = sorted({min(c, len(raw)) for c in cuts} | {0, len(raw)})
    for a, b in itertools.pairwise(bounds):
        got.extend(parser.feed(raw[a:b]))
    return got, parser


@settings(max_examples=300, deadline=None)
@given(
    evs=events,
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    comments=st.booleans(),
    cuts=st.lists(st.integers(0, 2000), max_size=30),
)
def test_any_chunking_gives_the_same_events(
    evs: list[tuple[str, list[str], str | None]], newline: str, comments: bool, cuts: list[int]
) -> None:
    raw = encode(evs, newline, comments)
    got, parser = parse_chunks(raw, cuts)
    assert got == expected(evs)
    assert parser.retry == 1500
    byte_by_byte, _ = parse_chunks(raw, list(range(len(raw))))
    assert byte_by_byte == got


@settings(max_examples=500, deadline=None)
@given(raw=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=10))
def test_garbage_raises_only_the_parsers_error(raw: bytes, cuts: list[int]) -> None:
    try:
        got, _ = parse_chunks(raw, cuts)
    except SSEError:
        return
    for sse in got:
        if sse.event:
            parse_event(sse)  # never raises: an unknown or malformed event is Unknown


def test_the_details_of_the_standard() -> None:
    parser = SSEParser()
    raw = b"\xef\xbb\xbfdata:no space\nid: 7\n\n: comment\nid: 8\n\nretry: x\ndata\n\n"
    got = parser.feed(raw)
    # BOM dropped, "data:" without a space, an id-only block moves the cursor, a bare "data"
    assert got == [SSEEvent("message", "no space", "7"), SSEEvent("", "", "8"),
                   SSEEvent("message", "", None)]  # fmt: skip
    assert parser.retry is None and parser.comments == 1
    assert parser.feed(b"data: cut") == []  # an unfinished event waits
    assert parser.feed(b" here\n\n") == [SSEEvent("message", "cut here", None)]


def test_limits_and_invalid_utf8_are_sse_errors() -> None:
    with pytest.raises(SSEError):
        SSEParser().feed(b"data: \xff\xfe\n\n")
    with pytest.raises(SSEError):
        SSEParser(max_bytes=100).feed(b"data: " + b"x" * 200)
    small = SSEParser(max_bytes=100)
    for _ in range(4):  # 21 bytes each: 84 of 100
        small.feed(b"data: " + b"x" * 20 + b"\n")
    with pytest.raises(SSEError):
        small.feed(b"data: " + b"x" * 20 + b"\n")


def test_typed_events_and_forward_compatibility() -> None:
    msg = (
        '{"id":"m1","room_id":"r","seq":3,"user_id":"u","username":"u","type":"text",'
        '"text":"hi","created_at":"t","new_field":1}'
    )
    event = parse_event(SSEEvent("message", msg, "c9"))
    assert isinstance(event, NewMessage)
    assert (event.message.seq, event.message.text, event.cursor) == (3, "hi", "c9")
    assert parse_event(SSEEvent("game.move", '{"x": 1}', None)) == Unknown(
        event="game.move", data={"x": 1}
    )
    broken = parse_event(SSEEvent("message", '{"id": 1}', "c"))
    assert isinstance(broken, Unknown) and broken.data == {"id": 1}
