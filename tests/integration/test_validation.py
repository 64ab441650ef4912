"""Every way a request can be wrong, against a real server: the right status, the right error
code, the ``{"error": {"code", "message"}}`` shape, and nothing changed by the failed request.

Pure request-shape checks run on the trust-mode server (identity by ``User-ID``, no sign-up
cost); membership and ownership rules run on the jwt-mode server, the default mode.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support import Account, Server, assert_error, client, open_stream, signup

# Every character with the Unicode White_Space property.
UNICODE_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def as_user(user: str) -> dict[str, str]:
    return {"User-ID": user}


async def send(
    http: httpx.AsyncClient, headers: dict[str, str], room: str, text: str, **extra: Any
) -> httpx.Response:
    return await http.post(
        "/chat/messages", headers=headers, json={"room_id": room, "message": text, **extra}
    )


async def history(
    http: httpx.AsyncClient, headers: dict[str, str], room: str
) -> list[dict[str, Any]]:
    r = await http.get(f"/chat/room/{room}/history", headers=headers, params={"limit": 200})
    assert r.status_code == 200, r.text
    msgs: list[dict[str, Any]] = r.json()
    return msgs


async def last_seq(http: httpx.AsyncClient, headers: dict[str, str], room: str) -> int:
    r = await http.get(f"/chat/room/{room}", headers=headers)
    assert r.status_code == 200, r.text
    return int(r.json()["last_seq"])


@dataclass
class Snapshot:
    history: list[dict[str, Any]]
    last_seq: int


async def snapshot(http: httpx.AsyncClient, headers: dict[str, str], room: str) -> Snapshot:
    return Snapshot(await history(http, headers, room), await last_seq(http, headers, room))


async def trust_room(http: httpx.AsyncClient, prefix: str = "val") -> tuple[str, dict[str, str]]:
    """A fresh trust-mode room holding one baseline message, and its sender's headers."""
    room, who = uid(prefix), as_user(uid("user"))
    r = await send(http, who, room, "baseline")
    assert r.status_code == 201, r.text
    return room, who


async def post_raw(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    content: bytes,
    content_type: str | None = "application/json",
) -> httpx.Response:
    h = dict(headers)
    if content_type is not None:
        h["Content-Type"] = content_type
    return await http.post("/chat/messages", headers=h, content=content)


_PAIR: dict[str, tuple[Account, Account]] = {}


async def pair(server: Server) -> tuple[Account, Account]:
    """Two accounts shared by this module's jwt tests (each test makes its own fresh rooms)."""
    if server.url not in _PAIR:
        a, b = await asyncio.gather(signup(server, "first"), signup(server, "second"))
        _PAIR[server.url] = (a, b)
    return _PAIR[server.url]


async def create_room(http: httpx.AsyncClient, owner: Account, visibility: str) -> str:
    r = await http.post(
        "/chat/rooms", headers=owner.auth, json={"name": uid("room"), "visibility": visibility}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


# --- message text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", " ", "\t\n  \r\n", "\u3000\u2003\n", "\xa0\u2028\u2029", UNICODE_WHITESPACE],
    ids=["empty", "space", "ascii-ws", "ideographic-em-space", "nbsp-separators", "all-unicode"],
)
async def test_empty_or_whitespace_only_message_is_422(trust_server: Server, text: str) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        before = await snapshot(http, who, room)
        r = await send(http, who, room, text)
        assert_error(r, 422, "empty_message")
        assert await snapshot(http, who, room) == before


async def test_empty_message_does_not_create_the_room_in_trust_mode(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        room, who = uid("never"), as_user(uid("user"))
        assert_error(await send(http, who, room, "  "), 422, "empty_message")
        assert_error(await http.get(f"/chat/room/{room}", headers=who), 404, "room_not_found")


@pytest.mark.parametrize(
    "text",
    ["a" * 4001, "😀" * 4001, "e\u0301" * 2000 + "x"],
    ids=["ascii", "astral", "combining"],
)
async def test_4001_code_points_is_422(trust_server: Server, text: str) -> None:
    assert len(text) == 4001
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        before = await snapshot(http, who, room)
        r = await send(http, who, room, text)
        assert_error(r, 422, "message_too_long")
        assert await snapshot(http, who, room) == before


@pytest.mark.parametrize(
    "text",
    ["a" * 4000, "😀" * 4000, "👍🏽" * 2000, "e\u0301" * 2000],
    ids=["ascii", "astral", "astral-modifiers", "combining"],
)
@pytest.mark.parametrize("ascii_json", [False, True], ids=["utf8-json", "escaped-json"])
async def test_exactly_4000_code_points_is_accepted(
    trust_server: Server, text: str, ascii_json: bool
) -> None:
    """The limit counts code points: 4000 emoji are 8000 UTF-16 units and 16000 UTF-8 bytes."""
    assert len(text) == 4000
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        body = json.dumps({"room_id": room, "message": text}, ensure_ascii=ascii_json)
        r = await post_raw(http, who, body.encode())
        assert r.status_code == 201, r.text[:300]
        assert r.json()["message"]["text"] == text
        assert r.json()["message"]["seq"] == 2
        stored = await history(http, who, room)
        assert [m["text"] for m in stored] == ["baseline", text]


async def test_nul_character_is_rejected(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        before = await snapshot(http, who, room)
        r = await send(http, who, room, "before\x00after")
        assert_error(r, 422)
        assert await snapshot(http, who, room) == before


# --- body shape -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [{}, {"message": "hi"}, {"room_id": "ROOM"}, {"room": "ROOM", "text": "hi"}],
    ids=["empty-object", "no-room_id", "no-message", "wrong-names"],
)
async def test_missing_field_is_422(trust_server: Server, body: dict[str, Any]) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        before = await snapshot(http, who, room)
        body = {k: (room if v == "ROOM" else v) for k, v in body.items()}
        r = await http.post("/chat/messages", headers=who, json=body)
        err = assert_error(r, 422)
        assert err["code"] in {"missing_field", "invalid_field"}, err
        assert await snapshot(http, who, room) == before


@pytest.mark.parametrize(
    "fields",
    [
        {"message": 42},
        {"message": None},
        {"message": ["hi"]},
        {"message": {"text": "hi"}},
        {"room_id": ["ROOM"]},
        {"room_id": 7},
        {"room_id": None},
        {"timestamp": True},
        {"timestamp": {"ms": 1}},
        {"timestamp": [1732370000123]},
        {"client_msg_id": 5},
        {"client_msg_id": ""},
        {"client_msg_id": "k" * 129},
    ],
    ids=[
        "message-number",
        "message-null",
        "message-list",
        "message-object",
        "room_id-list",
        "room_id-number",
        "room_id-null",
        "timestamp-bool",
        "timestamp-object",
        "timestamp-list",
        "client_msg_id-number",
        "client_msg_id-empty",
        "client_msg_id-too-long",
    ],
)
async def test_wrong_field_type_is_422(trust_server: Server, fields: dict[str, Any]) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        before = await snapshot(http, who, room)
        body: dict[str, Any] = {"room_id": room, "message": "typed wrong"}
        body.update({k: ([room] if v == ["ROOM"] else v) for k, v in fields.items()})
        r = await http.post("/chat/messages", headers=who, json=body)
        assert_error(r, 422)
        assert await snapshot(http, who, room) == before


@pytest.mark.parametrize("body", [b"[]", b'"hello"', b"42", b"null"])
async def test_json_that_is_not_an_object_is_rejected(trust_server: Server, body: bytes) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        before = await snapshot(http, who, room)
        r = await post_raw(http, who, body)
        assert r.status_code in {400, 422}, r.text
        assert_error(r, r.status_code)
        assert await snapshot(http, who, room) == before


@pytest.mark.parametrize(
    "raw",
    [
        b'{"room_id": "ROOM", "message": ',
        b"not json at all",
        b'{"room_id": "ROOM", "message": "hi",}',
        b"{'room_id': 'ROOM', 'message': 'hi'}",
        b"",
        b'{"room_id": "ROOM", "message": "\xff\xfe bad utf-8"}',
    ],
    ids=["truncated", "plain-text", "trailing-comma", "single-quotes", "empty-body", "bad-utf8"],
)
async def test_malformed_json_is_400(trust_server: Server, raw: bytes) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        before = await snapshot(http, who, room)
        r = await post_raw(http, who, raw.replace(b"ROOM", room.encode()))
        assert_error(r, 400, "malformed_json")
        assert await snapshot(http, who, room) == before


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "text/html", None],
)
async def test_non_json_content_type_is_415(trust_server: Server, content_type: str | None) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        before = await snapshot(http, who, room)
        body = json.dumps({"room_id": room, "message": "valid JSON, wrong type"}).encode()
        r = await post_raw(http, who, body, content_type)
        assert_error(r, 415, "unsupported_media_type")
        assert await snapshot(http, who, room) == before


async def test_json_content_type_variants_are_accepted(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        body = json.dumps({"room_id": room, "message": "ok"}).encode()
        for ctype in ("application/json; charset=utf-8", "Application/JSON"):
            r = await post_raw(http, who, body, ctype)
            assert r.status_code == 201, (ctype, r.text)
        assert await last_seq(http, who, room) == 3


async def test_body_over_64_kib_is_413(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        before = await snapshot(http, who, room)
        body = json.dumps({"room_id": room, "message": "x" * (64 * 1024)}).encode()
        assert len(body) > 64 * 1024
        r = await post_raw(http, who, body)
        assert_error(r, 413)
        assert await snapshot(http, who, room) == before


def exactly(size: int, **fields: Any) -> bytes:
    """A JSON body of exactly ``size`` bytes: ``fields`` plus an ignored ``pad`` field."""
    base = json.dumps({**fields, "pad": ""}, separators=(",", ":")).encode()
    body = json.dumps({**fields, "pad": "p" * (size - len(base))}, separators=(",", ":"))
    assert len(body.encode()) == size
    return body.encode()


async def chunked(data: bytes) -> AsyncIterator[bytes]:
    """Stream a body without Content-Length (Transfer-Encoding: chunked)."""
    for i in range(0, len(data), 8192):
        yield data[i : i + 8192]


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_body_limit_is_64_kib_on_send(trust_server: Server, streamed: bool) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        h = {**who, "Content-Type": "application/json"}
        at_limit = exactly(64 * 1024, room_id=room, message="fits")
        over = exactly(64 * 1024 + 1, room_id=room, message="does not fit")
        r = await http.post(
            "/chat/messages", headers=h, content=chunked(at_limit) if streamed else at_limit
        )
        assert r.status_code == 201, r.text[:200]
        before = await snapshot(http, who, room)
        r = await http.post(
            "/chat/messages", headers=h, content=chunked(over) if streamed else over
        )
        assert_error(r, 413)
        assert await snapshot(http, who, room) == before
        assert [m["text"] for m in before.history] == ["baseline", "fits"]


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_body_limit_is_64_kib_on_create_room(trust_server: Server, streamed: bool) -> None:
    async with client(trust_server.url) as http:
        who = as_user(uid("user"))
        h = {**who, "Content-Type": "application/json"}
        fits, too_big = uid("fits"), uid("toobig")
        at_limit = exactly(64 * 1024, name="fits", id=fits)
        over = exactly(64 * 1024 + 1, name="too big", id=too_big)
        r = await http.post(
            "/chat/rooms", headers=h, content=chunked(at_limit) if streamed else at_limit
        )
        assert r.status_code == 201, r.text[:200]
        r = await http.post("/chat/rooms", headers=h, content=chunked(over) if streamed else over)
        assert_error(r, 413)
        assert_error(await http.get(f"/chat/room/{too_big}", headers=who), 404)


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("POST", "/chat/rooms", "name"),
        ("PATCH", "/chat/messages/MID", "message"),
        ("POST", "/auth/register", "username"),
    ],
)
async def test_body_over_64_kib_is_413_on_other_routes(
    trust_server: Server, method: str, path: str, field: str
) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        mid = (await history(http, who, room))[0]["id"]
        before = await snapshot(http, who, room)
        r = await http.request(
            method, path.replace("MID", mid), headers=who, json={field: "y" * (70 * 1024)}
        )
        assert_error(r, 413)
        assert await snapshot(http, who, room) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/chat/rooms", {"name": "typed", "visibility": "public"}),
        ("PATCH", "/chat/messages/MID", {"message": "edited"}),
        ("POST", "/chat/room/ROOM/members", {"username": "someone"}),
        ("POST", "/auth/register", {"username": "ROOM", "password": "long enough pw"}),
    ],
    ids=["create-room", "edit", "invite", "register"],
)
async def test_non_json_content_type_is_415_on_other_routes(
    trust_server: Server, method: str, path: str, body: dict[str, Any]
) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        mid = (await history(http, who, room))[0]["id"]
        before = await snapshot(http, who, room)
        r = await http.request(
            method,
            path.replace("MID", mid).replace("ROOM", room),
            headers={**who, "Content-Type": "text/plain"},
            content=json.dumps(body).replace("ROOM", room).encode(),
        )
        assert_error(r, 415, "unsupported_media_type")
        assert await snapshot(http, who, room) == before


@pytest.mark.parametrize(
    "raw",
    [b'{"message": "half', b'{"message": "\xff\xfe"}'],
    ids=["truncated", "bad-utf8"],
)
async def test_malformed_json_is_400_on_edit(trust_server: Server, raw: bytes) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        mid = (await history(http, who, room))[0]["id"]
        before = await snapshot(http, who, room)
        r = await http.patch(
            f"/chat/messages/{mid}",
            headers={**who, "Content-Type": "application/json"},
            content=raw,
        )
        assert_error(r, 400, "malformed_json")
        assert await snapshot(http, who, room) == before


@pytest.mark.parametrize(
    "room_id",
    ["has space", "a/b", "ü-room", "x" * 65, "", "<script>", "room\n"],
    ids=["space", "slash", "non-ascii", "65-chars", "empty", "angle", "newline"],
)
async def test_invalid_room_id_is_422_and_creates_nothing(
    trust_server: Server, room_id: str
) -> None:
    async with client(trust_server.url) as http:
        who = as_user(uid("user"))
        r = await send(http, who, room_id, "hello")
        assert_error(r, 422)
        rooms = await http.get("/chat/rooms", headers=who)
        assert rooms.status_code == 200
        assert room_id not in [x["id"] for x in rooms.json()["rooms"]]


@pytest.mark.parametrize("user_id", ["has space", "mallory\n", "x" * 65, "<b>"])
async def test_invalid_trust_mode_user_id_is_rejected(trust_server: Server, user_id: str) -> None:
    """Trust mode names users by ``user_id``; a malformed one must not become a user."""
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        before = await snapshot(http, who, room)
        r = await send(http, {}, room, "who am I?", user_id=user_id)
        assert_error(r, 400, "invalid_user_id")
        r = await http.get(f"/chat/room/{room}/history", params={"user_id": user_id})
        assert_error(r, 400, "invalid_user_id")
        assert await snapshot(http, who, room) == before


# --- membership (jwt mode) --------------------------------------------------------------------


async def test_send_to_unknown_room_is_404_and_does_not_create_it(jwt_server: Server) -> None:
    alice, _ = await pair(jwt_server)
    async with client(jwt_server.url) as http:
        room = uid("ghost")
        r = await send(http, alice.auth, room, "anyone there?")
        assert_error(r, 404, "room_not_found")
        assert_error(await http.get(f"/chat/room/{room}", headers=alice.auth), 404)
        assert_error(await http.get(f"/chat/room/{room}/history", headers=alice.auth), 404)


async def test_non_member_of_public_room_is_403_and_nothing_stored(jwt_server: Server) -> None:
    owner, other = await pair(jwt_server)
    async with client(jwt_server.url) as http:
        room = await create_room(http, owner, "public")
        assert (await send(http, owner.auth, room, "owner speaks")).status_code == 201
        before = await snapshot(http, owner.auth, room)
        r = await send(http, other.auth, room, "let me in")
        assert_error(r, 403, "not_a_member")
        assert await snapshot(http, owner.auth, room) == before
        # the failed send did not make the sender a member either
        members = (await http.get(f"/chat/room/{room}/members", headers=owner.auth)).json()
        assert other.id not in [m["user_id"] for m in members["members"]]


async def test_non_member_of_private_room_gets_404_and_nothing_stored(jwt_server: Server) -> None:
    owner, other = await pair(jwt_server)
    async with client(jwt_server.url) as http:
        room = await create_room(http, owner, "private")
        assert (await send(http, owner.auth, room, "secret")).status_code == 201
        before = await snapshot(http, owner.auth, room)
        r = await send(http, other.auth, room, "psst")
        err = assert_error(r, 404, "room_not_found")
        assert "secret" not in json.dumps(err)
        assert await snapshot(http, owner.auth, room) == before


# --- idempotency ------------------------------------------------------------------------------


async def test_repeated_client_msg_id_returns_the_original(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        key = uid("cmid")
        first = await send(http, who, room, "once only", client_msg_id=key, timestamp=1)
        assert first.status_code == 201, first.text
        original = first.json()["message"]
        assert original["client_msg_id"] == key
        again = await send(http, who, room, "once only", client_msg_id=key, timestamp=1)
        assert again.status_code == 200, again.text
        assert again.json() == {"status": "sent", "message": original}
        # idempotency compares room_id and message, not timestamp
        later = await send(http, who, room, "once only", client_msg_id=key, timestamp=2)
        assert later.status_code == 200, later.text
        assert later.json()["message"] == original
        assert [m["id"] for m in await history(http, who, room)][1:] == [original["id"]]
        assert await last_seq(http, who, room) == 2


async def test_client_msg_id_with_different_body_is_409(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        other_room, _ = await trust_room(http)
        key = uid("cmid")
        assert (await send(http, who, room, "first", client_msg_id=key)).status_code == 201
        before = await snapshot(http, who, room)
        r = await send(http, who, room, "second", client_msg_id=key)
        assert_error(r, 409, "idempotency_conflict")
        r = await send(http, who, other_room, "first", client_msg_id=key)
        assert_error(r, 409, "idempotency_conflict")
        assert await snapshot(http, who, room) == before
        assert await last_seq(http, who, other_room) == 1


async def test_client_msg_id_is_per_user(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        room, alice = await trust_room(http)
        bob = as_user(uid("bob"))
        key = uid("shared")
        a = await send(http, alice, room, "same words", client_msg_id=key)
        b = await send(http, bob, room, "same words", client_msg_id=key)
        assert (a.status_code, b.status_code) == (201, 201), (a.text, b.text)
        assert a.json()["message"]["id"] != b.json()["message"]["id"]
        assert await last_seq(http, alice, room) == 3


async def test_ten_concurrent_identical_sends_store_one_message(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        key = uid("burst")
        async with open_stream(http, f"/chat/room/{room}/events", headers=as_user(uid("w"))) as s:
            results = await asyncio.gather(
                *[send(http, who, room, "just once", client_msg_id=key) for _ in range(10)]
            )
            codes = sorted(r.status_code for r in results)
            assert codes == [200] * 9 + [201], [r.text for r in results]
            ids = {r.json()["message"]["id"] for r in results}
            assert len(ids) == 1
            await s.wait_messages(1)
            await asyncio.sleep(0.3)
            assert [m["text"] for m in s.messages()] == ["just once"]
        stored = await history(http, who, room)
        assert [m["text"] for m in stored] == ["baseline", "just once"]
        assert stored[1]["id"] in ids
        assert await last_seq(http, who, room) == 2


# --- text and timestamp, exactly as sent ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "   leading and trailing spaces   ",
        "<img src=x onerror=alert(1)>",
        "<script>alert('x')</script> &amp; &lt;b&gt;",
        "emoji 😀 👍🏽 👨\u200d👩\u200d👧 🇫🇷",
        "line one\nline two\r\n\tindented\n\n",
        "quotes \" ' ` and backslash \\ and slash /",
        "\u200bzero width\u200b and e\u0301 combining",
        "data: not a frame\n\nid: 99\nevent: reset",
    ],
    ids=[
        "spaces",
        "img-xss",
        "html-entities",
        "emoji",
        "newlines",
        "quotes",
        "zw",
        "sse-lookalike",
    ],
)
async def test_text_is_stored_and_streamed_exactly_as_sent(trust_server: Server, text: str) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        async with open_stream(http, f"/chat/room/{room}/events", headers=as_user(uid("r"))) as s:
            r = await send(http, who, room, text)
            assert r.status_code == 201, r.text
            sent = r.json()["message"]
            assert sent["text"] == text
            assert sent["text"].encode() == text.encode()
            [streamed] = await s.wait_messages(1)
            assert streamed["text"].encode() == text.encode()
            assert streamed == sent
            ambient = {"presence", "member_joined"}  # other members coming and going
            assert [e.event for e in s.events if e.event not in ambient] == [
                "connected",
                "message",
            ]
        stored = (await history(http, who, room))[-1]
        assert stored["text"].encode() == text.encode()
        assert stored == sent


@pytest.mark.parametrize(
    "timestamp",
    [
        1732370000123,
        1732370000123.5,
        0,
        "2024-11-23T12:00:00.123Z",
        "1732370000123",
        "",
    ],
    ids=["int-ms", "float", "zero", "iso-string", "numeric-string", "empty-string"],
)
async def test_timestamp_is_echoed_unchanged(trust_server: Server, timestamp: Any) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        async with open_stream(http, f"/chat/room/{room}/events", headers=as_user(uid("r"))) as s:
            r = await send(http, who, room, "tick", timestamp=timestamp)
            assert r.status_code == 201, r.text
            sent = r.json()["message"]
            [streamed] = await s.wait_messages(1)
        stored = (await history(http, who, room))[-1]
        for msg in (sent, streamed, stored):
            assert msg["timestamp"] == timestamp
            assert type(msg["timestamp"]) is type(timestamp)
            assert msg["created_at"] != timestamp
            assert msg["created_at"].endswith("Z")


async def test_absent_timestamp_is_null(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        r = await send(http, who, room, "no clock")
        assert r.status_code == 201
        assert r.json()["message"]["timestamp"] is None
        assert (await history(http, who, room))[-1]["timestamp"] is None


# --- history and stream parameters ------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": -5},
        {"limit": "abc"},
        {"limit": "1.5"},
        {"before": -1},
        {"before": "abc"},
        {"after": -1},
        {"after": "x"},
    ],
    ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()),
)
async def test_history_query_validation_is_422(
    trust_server: Server, params: dict[str, Any]
) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        r = await http.get(f"/chat/room/{room}/history", headers=who, params=params)
        assert_error(r, 422)


async def test_history_limit_bounds_are_accepted(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        for limit in (1, 200):
            r = await http.get(f"/chat/room/{room}/history", headers=who, params={"limit": limit})
            assert r.status_code == 200, r.text
            assert [m["text"] for m in r.json()] == ["baseline"]


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "0x10", "9" * 30])
@pytest.mark.parametrize("where", ["header", "query"])
async def test_bad_last_event_id_is_400(trust_server: Server, cursor: str, where: str) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        headers, params = dict(who), {}
        if where == "header":
            headers["Last-Event-ID"] = cursor
        else:
            params["last_event_id"] = cursor
        async with open_stream(
            http, f"/chat/room/{room}/events", headers=headers, params=params
        ) as s:
            assert s.status == 400
        r = await http.get(f"/chat/room/{room}/events", headers=headers, params=params)
        assert_error(r, 400, "invalid_cursor")


async def test_valid_last_event_id_replays(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        room, who = await trust_room(http)
        assert (await send(http, who, room, "second")).status_code == 201
        async with open_stream(
            http, f"/chat/room/{room}/events", headers={**who, "Last-Event-ID": "1"}
        ) as s:
            msgs = await s.wait_messages(1)
            assert [m["text"] for m in msgs] == ["second"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/no/such/route"),
        ("POST", "/chat/nothing-here"),
        ("GET", "/chat/room/a/b/events"),
        ("GET", "/chat/room//events"),
        ("DELETE", "/chat/rooms/zzz/everything"),
    ],
)
async def test_unknown_route_is_404_json(trust_server: Server, method: str, path: str) -> None:
    async with client(trust_server.url) as http:
        r = await http.request(method, path, headers=as_user(uid("lost")))
        assert_error(r, 404)
        assert r.headers["content-type"].startswith("application/json")


async def test_unknown_message_id_is_404(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        who = as_user(uid("user"))
        r = await http.patch("/chat/messages/does-not-exist", headers=who, json={"message": "x"})
        assert_error(r, 404, "message_not_found")
        r = await http.delete("/chat/messages/does-not-exist", headers=who)
        assert_error(r, 404, "message_not_found")


# --- edit and delete (jwt mode) ---------------------------------------------------------------


async def test_edit_or_delete_someone_elses_message_is_403(jwt_server: Server) -> None:
    owner, bob = await pair(jwt_server)
    async with client(jwt_server.url) as http:
        room = await create_room(http, owner, "public")
        joined = await http.post(f"/chat/room/{room}/join", headers=bob.auth)
        assert joined.status_code == 200
        r = await send(http, owner.auth, room, "mine")
        assert r.status_code == 201
        mid = r.json()["message"]["id"]
        before = await snapshot(http, owner.auth, room)
        r = await http.patch(f"/chat/messages/{mid}", headers=bob.auth, json={"message": "hacked"})
        assert_error(r, 403, "not_message_owner")
        r = await http.delete(f"/chat/messages/{mid}", headers=bob.auth)
        assert_error(r, 403, "not_message_owner")
        after = await snapshot(http, owner.auth, room)
        assert after == before
        assert after.history[-1]["text"] == "mine"
        assert after.history[-1]["deleted"] is False


@pytest.mark.parametrize(
    "body",
    [
        {"message": ""},
        {"message": "   "},
        {"message": "\u3000\u2003\n"},
        {"message": "z" * 4001},
        {},
        {"message": 5},
    ],
    ids=["empty", "spaces", "unicode-ws", "too-long", "missing", "number"],
)
async def test_invalid_edit_is_422_and_changes_nothing(
    jwt_server: Server, body: dict[str, Any]
) -> None:
    me, _ = await pair(jwt_server)
    async with client(jwt_server.url) as http:
        room = await create_room(http, me, "public")
        r = await send(http, me.auth, room, "original")
        mid = r.json()["message"]["id"]
        before = await snapshot(http, me.auth, room)
        r = await http.patch(f"/chat/messages/{mid}", headers=me.auth, json=body)
        assert_error(r, 422)
        after = await snapshot(http, me.auth, room)
        assert after == before
        assert after.history[-1]["text"] == "original"
        assert after.history[-1]["edited_at"] is None


async def test_edit_and_delete_are_streamed_and_kept_in_history(jwt_server: Server) -> None:
    me, watcher = await pair(jwt_server)
    async with client(jwt_server.url) as http:
        room = await create_room(http, me, "public")
        async with open_stream(http, f"/chat/room/{room}/events", headers=watcher.auth) as s:
            r = await send(http, me.auth, room, "first draft", timestamp=123)
            original = r.json()["message"]
            mid, seq = original["id"], original["seq"]

            r = await http.patch(
                f"/chat/messages/{mid}", headers=me.auth, json={"message": "  second draft  "}
            )
            assert r.status_code == 200, r.text
            edited = r.json()
            assert edited["id"] == mid and edited["seq"] == seq
            assert edited["text"] == "  second draft  "
            assert edited["edited_at"] is not None
            await s.wait_for(lambda st: bool(st.named("message_edited")))
            ev = s.named("message_edited")[0]
            assert ev.json()["id"] == mid
            assert ev.json()["text"] == "  second draft  "
            assert (await history(http, me.auth, room))[-1]["text"] == "  second draft  "

            r = await http.delete(f"/chat/messages/{mid}", headers=me.auth)
            assert r.status_code == 200, r.text
            await s.wait_for(lambda st: bool(st.named("message_deleted")))
            gone = s.named("message_deleted")[0].json()
            assert gone["id"] == mid and gone["deleted"] is True and gone["text"] == ""

            # edits and deletes are named events: onmessage only ever saw the one message
            assert [m["id"] for m in s.messages()] == [mid]

        [kept] = await history(http, me.auth, room)
        assert kept["id"] == mid
        assert kept["seq"] == seq
        assert kept["deleted"] is True
        assert kept["text"] == ""
        assert kept["file"] is None

        r = await http.patch(f"/chat/messages/{mid}", headers=me.auth, json={"message": "back"})
        assert_error(r, 409)
        [still] = await history(http, me.auth, room)
        assert still["deleted"] is True and still["text"] == ""

        # the seq of a deleted message is never reused
        r = await send(http, me.auth, room, "after the delete")
        assert r.json()["message"]["seq"] == seq + 1
