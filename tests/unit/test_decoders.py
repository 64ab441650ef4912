"""The request decoders, property-based: whatever bytes arrive, the answer is a decoded value or
a 4xx :class:`HubbubError` — never another exception (which would be a 500 or a dropped
WebSocket). API.md "Limits and abuse": JSON nested deeper than 64 levels, lone UTF-16
surrogates and integers beyond 2^53 are malformed input."""

from __future__ import annotations

import json
import os
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hubbub.api.raw import (
    MAX_JSON_DEPTH,
    check_json_body,
    check_json_depth,
    json_depth,
    json_media_type,
    json_too_deep,
    lenient_field,
)
from hubbub.api.send import decode_send_body
from hubbub.encoding import to_json
from hubbub.errors import HubbubError
from hubbub.transports.websocket import decode_op, frame_ref
from hubbub.wire import SendBody

# No example database on disk, no deadline (CI machines vary); enough runs to find the corners
# (`make fuzz` raises HUBBUB_FUZZ_EXAMPLES above the suite's 25 for a longer run).
SCALE = max(1, int(os.environ.get("HUBBUB_FUZZ_EXAMPLES", "25")) // 25)
PROPERTY = settings(
    database=None,
    deadline=None,
    max_examples=250 * SCALE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# JSON values, nested at random (strings with brackets, quotes and backslashes inside).
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('[]{}"\\:,ab é\n\u2028'), max_size=12)
    | st.text(max_size=8)
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet='ab"[{\\', max_size=4), inner, max_size=4)
    ),
    max_leaves=30,
)

# Text that looks like JSON to a scanner and breaks it: brackets, quotes, escapes, surrogate
# escapes, a random run of nesting in front.
_hostile_piece = st.sampled_from(
    [
        "[",
        "]",
        "{",
        "}",
        '"',
        "\\",
        '\\"',
        "\\\\",
        ":",
        ",",
        "1",
        "9223372036854775808",
        "1e400",
        "\\ud800",
        "\\udc00",
        "\\ud83d\\ude00",
        '"ref"',
        '"op"',
        '"send"',
        "null",
        "\x00",
        "\u2028",
        "é",
        " ",
    ]
)
hostile_text = st.builds(
    lambda depth, opener, parts, closing: opener * depth + "".join(parts) + closing,
    st.integers(min_value=0, max_value=2500),
    st.sampled_from(["[", "{", '{"a":', '{"ref":1,"x":', '["\\"]",']),
    st.lists(_hostile_piece, max_size=60),
    st.sampled_from(["", "]", "}", "]]]]", '"']),
)
hostile_bytes = (
    st.binary(max_size=300)
    | hostile_text.map(lambda t: t.encode("utf-8", "surrogatepass"))
    | json_values.map(lambda v: json.dumps(v).encode())
)


def reference_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    return 0


def nest(depth: int, inner: str = "1") -> str:
    return (
        '{"a":' * (depth // 2)
        + "[" * (depth - depth // 2)
        + inner
        + "]" * (depth - depth // 2)
        + "}" * (depth // 2)
    )


def assert_client_error(exc: HubbubError, status: int | None = None) -> None:
    assert 400 <= exc.status < 500, (exc.status, exc.code, exc.message)
    assert status is None or exc.status == status, (exc.status, exc.code, exc.message)
    body = exc.body()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    to_json(body)  # encodable as it is


def no_surrogates(value: Any) -> None:
    if isinstance(value, str):
        value.encode("utf-8")  # strict: a lone surrogate raises
    elif isinstance(value, list):
        for v in value:
            no_surrogates(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            no_surrogates(k)
            no_surrogates(v)


# The depth scanner ---------------------------------------------------------------------------


@PROPERTY
@given(json_values, st.booleans(), st.sampled_from([None, 0, 2]))
def test_depth_is_exact_for_json(value: Any, ascii_only: bool, indent: int | None) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    assert json_depth(text) == reference_depth(value)
    assert json_depth(text.encode()) == reference_depth(value)
    assert json_too_deep(text) == (reference_depth(value) > MAX_JSON_DEPTH)


@PROPERTY
@given(st.integers(min_value=0, max_value=400), st.sampled_from(["1", '"[{"', '"\\"]]"', "[]"]))
def test_depth_of_deep_nesting(depth: int, inner: str) -> None:
    text = nest(depth, inner)
    expected = depth + (1 if inner == "[]" else 0)
    assert json_depth(text) == expected
    assert json_too_deep(text) == (expected > MAX_JSON_DEPTH)
    if expected > MAX_JSON_DEPTH:
        with pytest.raises(HubbubError) as caught:
            check_json_depth(text)
        assert caught.value.status == 400 and caught.value.code == "json_too_deep"
    else:
        check_json_depth(text)


@PROPERTY
@given(hostile_bytes)
@example(b'"' + b'\\"' * 5000)  # one unterminated string of escaped quotes: linear, not stuck
@example(b"[" * 30000)
@example(b'["\\\\"' + b"[" * 100)
def test_a_text_that_passes_the_depth_check_never_recurses_a_parser(data: bytes) -> None:
    """The scanner bounds what the parsers (msgspec here, Python's json in FastAPI) reach."""
    try:
        check_json_depth(data)
    except HubbubError as exc:
        assert_client_error(exc)
        return
    for parse in (msgspec.json.decode, json.loads):
        try:
            parse(data)
        except RecursionError:  # pragma: no cover - the property under test
            pytest.fail("a text within the depth limit made a parser recurse too deeply")
        except ValueError:
            pass  # not JSON: the decoders below answer 400 for it


def test_depth_ignores_brackets_inside_strings_and_escaped_quotes() -> None:
    assert json_depth(b'"[[[["') == 0
    assert json_depth(b'["\\"["]') == 1  # the escaped quote does not end the string
    assert json_depth(b'["\\\\", []]') == 2  # an escaped backslash does not escape the quote
    assert json_depth(b'{"a": "]]]", "b": [[{}]]}') == 4
    assert json_depth("[" * 65 + "]" * 65) == 65
    assert not json_too_deep("[" * 64 + "]" * 64)
    assert json_too_deep("[" * 65 + "]" * 65)
    assert json_too_deep('{"x":' + "[" * 64 + "]" * 64 + "}")  # the object is a level too


# The decoders --------------------------------------------------------------------------------


@PROPERTY
@given(hostile_bytes)
@example(b'{"room_id": "r", "message": "\\ud800"}')
@example(b'{"room_id": "r", "message": "hi", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}")
@example(b'{"room_id": "r", "message": "a\xed\xa0\x80"}')
@example(b'{"room_id": 9223372036854775808, "message": "hi"}')
@example(b'{"room_id": "r", "message": "hi", "timestamp": 1e400}')
def test_send_body_decoder(data: bytes) -> None:
    try:
        body = decode_send_body(data)
    except HubbubError as exc:
        assert_client_error(exc)
        return
    assert isinstance(body, SendBody)
    no_surrogates([body.room_id, body.message, body.client_msg_id, body.user_id])


@PROPERTY
@given(hostile_bytes)
@example(b'{"username": "\\ud800", "password": "correct horse"}')
@example(b'{"username": "\\udc00x", "password": "correct horse"}')
@example(b'{"name": "a", "x": ' + b"[" * 65 + b"]" * 65 + b"}")
@example(b'\xef\xbb\xbf{"a": 1}')
def test_buffered_body_check(data: bytes) -> None:
    """What every FastAPI route's body passes first: if it passes, Python's parser (which
    FastAPI uses and which lets lone surrogates through) reads it, with no lone surrogate."""
    try:
        check_json_body(data)
    except HubbubError as exc:
        assert_client_error(exc, 400)
        return
    no_surrogates(json.loads(data))


@PROPERTY
@given(hostile_bytes | hostile_text)
@example('{"ref": 7}')
@example('{"op": 5, "ref": "a"}')
@example('{"op": "send", "ref": 1, "room_id": 123}')
@example('{"op": "read", "ref": 2, "room_id": "r", "seq": 9223372036854775808}')
@example('{"ref": 3, "op": "ping", "x": ' + "[" * 20000 + "]" * 20000 + "}")
def test_websocket_op_decoder(frame: str | bytes) -> None:
    try:
        op = decode_op(frame)
    except HubbubError as exc:
        assert_client_error(exc)
        to_json(frame_ref(frame))  # never raises; whatever it found can be echoed
        return
    assert isinstance(op.op, str)
    for seq in (op.seq, op.after_seq):
        assert seq is None or 0 <= seq <= 2**53
    to_json(op.ref)


@pytest.mark.parametrize(
    ("frame", "status", "ref"),
    [
        ('{"ref": 7}', 422, 7),
        ('{"op": 5, "ref": "a"}', 422, "a"),
        ('{"op": "send", "ref": 1, "room_id": 123}', 422, 1),
        (
            '{"op": "subscribe", "ref": [1, {"a": 2}], "room_id": "r", "after_seq": -1}',
            422,
            [1, {"a": 2}],
        ),
        ('{"op": "read", "ref": "r", "room_id": "x", "seq": 9007199254740993}', 422, "r"),
        ('{"op": "ping", "ref": 9, "x": ' + "[" * 100 + "]" * 100 + "}", 400, 9),
        ('{"op": "ping", "x": ' + "[" * 30000 + "]" * 30000 + ', "ref": "late"}', 400, "late"),
        ('{"op": "ping", "ref": "\\ud800"}', 400, None),
        ('{"op": "send", "ref": 5, "message": "\\ud800"', 400, 5),
        ('{"ref": 6, "op": "pi', 400, 6),
        ("[1, 2]", 422, None),
        ("not json", 400, None),
    ],
)
def test_bad_frames_keep_their_ref(frame: str, status: int, ref: Any) -> None:
    with pytest.raises(HubbubError) as caught:
        decode_op(frame)
    assert caught.value.status == status, caught.value.message
    assert frame_ref(frame) == ref


def test_lenient_field_reads_only_the_top_level() -> None:
    assert lenient_field('{"x": {"ref": 1}, "ref": 2, "op": ', "ref") == 2
    assert lenient_field('[{"ref": 1}]', "ref") is None
    assert lenient_field('{"a": "ref", "ref": -1.5e3', "ref") == -1500.0
    assert lenient_field('{"ref": {"a": [1, 2]}, "x": [[[', "ref") == {"a": [1, 2]}
    assert lenient_field('{"ref": ' + "[" * 100 + "]" * 100 + "}", "ref") is None  # too deep
    assert lenient_field('{"ref":', "ref") is None


# Content types -------------------------------------------------------------------------------


def scope_with(*content_types: bytes) -> dict[str, Any]:
    return {"headers": [(b"host", b"x"), *((b"content-type", c) for c in content_types)]}


@pytest.mark.parametrize(
    ("headers", "found"),
    [
        ((b"text/plain", b"application/json"), b"application/json"),  # ab -p -H ...
        ((b"Application/JSON; charset=UTF-8",), b"Application/JSON; charset=UTF-8"),
        ((b"text/plain, application/json",), b"application/json"),
        ((b"application/merge-patch+json",), b"application/merge-patch+json"),
        ((b"text/plain",), None),
        ((b"application/jsonp",), None),
        ((b"multipart/form-data; boundary=json",), None),
        ((), None),
    ],
)
def test_json_is_any_content_type_that_says_so(
    headers: tuple[bytes, ...], found: bytes | None
) -> None:
    assert json_media_type(scope_with(*headers)) == found
