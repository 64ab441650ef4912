"""Full-text search (``GET /chat/search``) against a real server: relevance, pagination,
prefixes, case and accents, plain-text highlights, and that nothing leaks — not a private room's
messages, not a deleted message, not an edited message's old text.

Every test searches for words made up for it (``word()``), so tests sharing a server never see
each other's messages. Ranking, paging and highlighting run in trust mode (identity by
``User-ID``); who may see what runs in jwt mode, the default.
"""

from __future__ import annotations

import asyncio
import base64
import unicodedata
import uuid
from typing import Any

import httpx
import pytest

from tests.support import Account, Server, assert_error, client, signup


def word() -> str:
    """A word no other test uses: letters only, so it is one token whatever the tokenizer."""
    return "zq" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:12])


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def as_user(user: str) -> dict[str, str]:
    return {"User-ID": user}


def plain(s: str) -> str:
    """Lower case without Latin accents (what the tests compare highlights with)."""
    return "".join(
        c for c in unicodedata.normalize("NFD", s.lower()) if not unicodedata.combining(c)
    )


async def send(http: httpx.AsyncClient, headers: dict[str, str], room: str, text: str) -> Any:
    r = await http.post("/chat/messages", headers=headers, json={"room_id": room, "message": text})
    assert r.status_code == 201, r.text
    return r.json()["message"]


async def search(
    http: httpx.AsyncClient, headers: dict[str, str], q: str, **params: Any
) -> dict[str, Any]:
    r = await http.get("/chat/search", headers=headers, params={"q": q, **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"results", "next_before"}, body
    return body


async def found_ids(
    http: httpx.AsyncClient, headers: dict[str, str], q: str, **params: Any
) -> list[str]:
    return [m["id"] for m in (await search(http, headers, q, **params))["results"]]


# --- relevance -------------------------------------------------------------------------------


async def test_denser_match_ranks_first_even_when_older(trust_server: Server) -> None:
    kw = word()
    me, room = as_user(uid("u")), uid("room")
    filler = " ".join(f"filler{i}" for i in range(40))
    async with client(trust_server.url) as http:
        dense = await send(http, me, room, f"{kw} and {kw} again")
        sparse = await send(http, me, room, f"{filler} {kw} {filler}")
        medium = await send(http, me, room, f"once {kw} in a somewhat longer line of words here")
        assert await found_ids(http, me, kw) == [dense["id"], medium["id"], sparse["id"]]
        # the same ranking inside the room
        assert await found_ids(http, me, kw, room_id=room) == [
            dense["id"],
            medium["id"],
            sparse["id"],
        ]


async def test_every_word_must_match(trust_server: Server) -> None:
    a, b = word(), word()
    me, room = as_user(uid("u")), uid("room")
    async with client(trust_server.url) as http:
        both = await send(http, me, room, f"{a} meets {b}")
        await send(http, me, room, f"{a} alone")
        await send(http, me, room, f"{b} alone")
        assert await found_ids(http, me, f"{a} {b}") == [both["id"]]
        assert await found_ids(http, me, f"{b}, {a}!") == [both["id"]]
        assert len(await found_ids(http, me, a)) == 2


async def test_operators_and_quotes_are_just_words(trust_server: Server) -> None:
    kw = word()
    me, room = as_user(uid("u")), uid("room")
    async with client(trust_server.url) as http:
        msg = await send(http, me, room, f"{kw} alpha beta: some text and a near miss")
        # were OR an operator, these would find the message
        assert await found_ids(http, me, f"{kw} OR nothingmatches") == []
        assert await found_ids(http, me, f'{kw}" OR "nothingmatches') == []
        # syntax characters are separators and operators are words, never an error
        for q in [
            f'"{kw}"',
            f"{kw}*",
            f"({kw})",
            f"text:{kw}",
            f"^{kw}",
            f"-{kw}",
            f"{kw} AND",
            f"NEAR({kw} alpha)",
            f"{kw} + alpha",
            f"{kw}' & 'alpha",
        ]:
            assert await found_ids(http, me, q) == [msg["id"]], q


# --- pagination ------------------------------------------------------------------------------


async def test_pages_of_ten_without_duplicates(trust_server: Server) -> None:
    kw = word()
    me, room = as_user(uid("u")), uid("room")
    async with client(trust_server.url) as http:
        sent = [await send(http, me, room, f"{kw} number {i:02d}") for i in range(25)]
        pages: list[list[dict[str, Any]]] = []
        cursor: str | None = None
        for _ in range(3):
            params: dict[str, Any] = {"limit": 10}
            if cursor is not None:
                params["before"] = cursor
            body = await search(http, me, kw, **params)
            pages.append(body["results"])
            cursor = body["next_before"]
            if not pages[1:]:
                # a match arriving meanwhile does not shift the pages being read
                await asyncio.sleep(0.02)
                await send(http, me, room, f"{kw} number late")
            if len(pages) < 3:
                assert isinstance(cursor, str) and cursor, body
        assert [len(p) for p in pages] == [10, 10, 5]
        assert cursor is None
        ids = [m["id"] for p in pages for m in p]
        assert len(set(ids)) == 25
        # equally relevant: newest first
        assert ids == [m["id"] for m in reversed(sent)]
        # a new search sees the late message
        assert len(await found_ids(http, me, kw, limit=100)) == 26


async def test_last_page_exactly_full_has_no_cursor(trust_server: Server) -> None:
    kw = word()
    me, room = as_user(uid("u")), uid("room")
    async with client(trust_server.url) as http:
        for i in range(4):
            await send(http, me, room, f"{kw} {i}")
        first = await search(http, me, kw, limit=2)
        assert len(first["results"]) == 2
        second = await search(http, me, kw, limit=2, before=first["next_before"])
        assert len(second["results"]) == 2
        assert second["next_before"] is None
        everything = await search(http, me, kw)
        assert len(everything["results"]) == 4
        assert everything["next_before"] is None
        nothing = await search(http, me, word())
        assert nothing == {"results": [], "next_before": None}


# --- matching --------------------------------------------------------------------------------


async def test_last_word_matches_as_prefix(trust_server: Server) -> None:
    kw = word()
    me, room = as_user(uid("u")), uid("room")
    async with client(trust_server.url) as http:
        msg = await send(http, me, room, f"here is the {kw}ation, truly")
        prefix = kw[:8]
        body = await search(http, me, prefix)
        [hit] = [h for h in body["results"] if h["id"] == msg["id"]]
        [(s, e)] = hit["highlights"]
        assert hit["text"][s:e].lower() == prefix
        assert await found_ids(http, me, f"here {kw}") == [msg["id"]]
        assert await found_ids(http, me, f"here {kw}atio") == [msg["id"]]
        # only the last word is a prefix: "her" is not "here"
        assert await found_ids(http, me, f"her {kw}") == []
        assert await found_ids(http, me, f"{kw} here") == []  # "kw" alone is not a word there


async def test_case_and_accents_do_not_matter(trust_server: Server) -> None:
    kw = word()
    me, room = as_user(uid("u")), uid("room")
    async with client(trust_server.url) as http:
        msg = await send(http, me, room, f"Café {kw.upper()} NAÏVE Crème brûlée")
        for q in [
            f"cafe {kw}",
            f"CAFÉ {kw}",
            f"{kw} naive",
            f"café NAIVE {kw}",
            f"{kw} creme brul",
        ]:
            assert await found_ids(http, me, q) == [msg["id"]], q
        [hit] = (await search(http, me, f"cafe {kw} brul"))["results"]
        text = hit["text"]
        assert [text[s:e] for s, e in hit["highlights"]] == ["Café", kw.upper(), "brûl"]
        for (s, e), token in zip(hit["highlights"], ["cafe", kw, "brul"], strict=True):
            assert plain(text[s:e]) == token


async def test_highlights_are_code_point_offsets(trust_server: Server) -> None:
    kw = word()
    me, room = as_user(uid("u")), uid("room")
    # astral characters (two UTF-16 units each) before the matches: offsets count code points
    text = f"🎉🎉 𝒳 say {kw}, then {kw.capitalize()}!\nand again: {kw}"
    async with client(trust_server.url) as http:
        await send(http, me, room, text)
        [hit] = (await search(http, me, kw))["results"]
        assert hit["text"] == text
        spans = [tuple(x) for x in hit["highlights"]]
        starts = [i for i in range(len(text)) if text[i:].lower().startswith(kw)]
        assert spans == [(i, i + len(kw)) for i in starts]
        assert all(text[s:e].lower() == kw for s, e in spans)


async def test_html_comes_back_verbatim(trust_server: Server) -> None:
    kw = word()
    me, room = as_user(uid("u")), uid("room")
    text = f"<script>alert('{kw}')</script> <b>{kw}</b> &amp; <mark>x</mark>"
    async with client(trust_server.url) as http:
        await send(http, me, room, text)
        r = await http.get("/chat/search", headers=me, params={"q": kw})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        [hit] = r.json()["results"]
        assert hit["text"] == text  # nothing escaped, nothing added
        assert [hit["text"][s:e] for s, e in hit["highlights"]] == [kw, kw]
        assert "<em>" not in r.text and "&lt;" not in r.text


async def test_a_result_is_the_message_plus_highlights(trust_server: Server) -> None:
    kw = word()
    me, room = as_user(uid("u")), uid("room")
    async with client(trust_server.url) as http:
        await send(http, me, room, f"the {kw} itself")
        [hit] = (await search(http, me, kw))["results"]
        r = await http.get(f"/chat/room/{room}/history", headers=me)
        [stored] = r.json()
        highlights = hit.pop("highlights")
        assert hit == stored
        assert highlights == [[4, 4 + len(kw)]]


async def test_edited_message_is_found_by_its_new_text_only(trust_server: Server) -> None:
    old, new = word(), word()
    me, room = as_user(uid("u")), uid("room")
    async with client(trust_server.url) as http:
        msg = await send(http, me, room, f"first draft {old}")
        assert await found_ids(http, me, old) == [msg["id"]]
        r = await http.patch(f"/chat/messages/{msg['id']}", headers=me, json={"message": new})
        assert r.status_code == 200, r.text
        assert await found_ids(http, me, old) == []
        [hit] = (await search(http, me, new))["results"]
        assert hit["id"] == msg["id"]
        assert hit["text"] == new
        assert hit["edited_at"] is not None
        assert hit["highlights"] == [[0, len(new)]]


# --- who may find what (jwt) -----------------------------------------------------------------


_PEOPLE: dict[str, list[Account]] = {}


async def people(server: Server) -> list[Account]:
    """Three accounts shared by this module's jwt tests (each test makes its own rooms)."""
    if server.url not in _PEOPLE:
        _PEOPLE[server.url] = list(
            await asyncio.gather(*[signup(server, p) for p in ("ann", "ben", "cat")])
        )
    return _PEOPLE[server.url]


async def new_room(http: httpx.AsyncClient, owner: Account, visibility: str) -> str:
    r = await http.post(
        "/chat/rooms", headers=owner.auth, json={"name": uid("room"), "visibility": visibility}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_private_room_never_leaks(jwt_server: Server) -> None:
    ann, ben, cat = await people(jwt_server)
    kw = word()
    async with client(jwt_server.url) as http:
        secret = await new_room(http, ann, "private")
        msg = await send(http, ann.auth, secret, f"the {kw} plan")
        assert await found_ids(http, ann.auth, kw) == [msg["id"]]
        assert await found_ids(http, ann.auth, kw, room_id=secret) == [msg["id"]]
        # not a member: nothing, and the room itself is unknown
        assert await found_ids(http, ben.auth, kw) == []
        assert await found_ids(http, ben.auth, f"the {kw[:6]}") == []
        r = await http.get("/chat/search", headers=ben.auth, params={"q": kw, "room_id": secret})
        assert_error(r, 404, "room_not_found")
        # the same 404 as a room that does not exist
        r = await http.get(
            "/chat/search", headers=ben.auth, params={"q": kw, "room_id": uid("nosuch")}
        )
        assert_error(r, 404, "room_not_found")
        # invited: found; left: gone again
        r = await http.post(
            f"/chat/room/{secret}/members", headers=ann.auth, json={"user_id": cat.id}
        )
        assert r.status_code in (200, 201), r.text
        assert await found_ids(http, cat.auth, kw) == [msg["id"]]
        r = await http.post(f"/chat/room/{secret}/leave", headers=cat.auth)
        assert r.status_code == 200, r.text
        assert await found_ids(http, cat.auth, kw) == []
        r = await http.get("/chat/search", headers=cat.auth, params={"q": kw, "room_id": secret})
        assert_error(r, 404, "room_not_found")


async def test_public_room_is_searchable_by_any_signed_in_user(jwt_server: Server) -> None:
    ann, ben, _ = await people(jwt_server)
    kw = word()
    async with client(jwt_server.url) as http:
        open_room = await new_room(http, ann, "public")
        secret = await new_room(http, ann, "private")
        public_msg = await send(http, ann.auth, open_room, f"open {kw}")
        await send(http, ann.auth, secret, f"hidden {kw}")
        # ben is in neither room: he finds the public message, never the private one
        assert await found_ids(http, ben.auth, kw) == [public_msg["id"]]
        assert await found_ids(http, ben.auth, kw, room_id=open_room) == [public_msg["id"]]
        assert len(await found_ids(http, ann.auth, kw)) == 2
        assert await found_ids(http, ann.auth, kw, room_id=secret) != [public_msg["id"]]


async def test_deleted_message_is_never_found(jwt_server: Server) -> None:
    ann, ben, _ = await people(jwt_server)
    kw = word()
    async with client(jwt_server.url) as http:
        room = await new_room(http, ann, "public")
        gone = await send(http, ann.auth, room, f"oops {kw} typo")
        kept = await send(http, ann.auth, room, f"fine {kw}")
        assert set(await found_ids(http, ben.auth, kw)) == {gone["id"], kept["id"]}
        r = await http.delete(f"/chat/messages/{gone['id']}", headers=ann.auth)
        assert r.status_code == 200, r.text
        for who in (ann, ben):
            assert await found_ids(http, who.auth, kw) == [kept["id"]]
            assert await found_ids(http, who.auth, kw, room_id=room) == [kept["id"]]
            assert await found_ids(http, who.auth, "oops typo") == []
            assert await found_ids(http, who.auth, f"oops {kw[:5]}") == []


async def test_search_needs_a_signed_in_user(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        r = await http.get("/chat/search", params={"q": "hello"})
        assert_error(r, 401)
        r = await http.get(
            "/chat/search",
            params={"q": "hello"},
            headers={"Authorization": "Bearer not-a-token"},
        )
        assert_error(r, 401)


# --- bad input -------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({}, 422, "missing_field"),
        ({"q": ""}, 422, "invalid_query"),
        ({"q": "   "}, 422, "invalid_query"),
        ({"q": "!!! ,,, ?? -- **"}, 422, "invalid_query"),
        ({"q": '"*" ()'}, 422, "invalid_query"),
        ({"q": "\u0301"}, 422, "invalid_query"),
        ({"q": "a" * 201}, 422, "query_too_long"),
        ({"q": "hello", "limit": "0"}, 422, "invalid_field"),
        ({"q": "hello", "limit": "101"}, 422, "invalid_field"),
        ({"q": "hello", "limit": "abc"}, 422, "invalid_field"),
        ({"q": "hello", "limit": "-1"}, 422, "invalid_field"),
        ({"q": "hello", "before": "not a cursor!"}, 400, "invalid_cursor"),
        ({"q": "hello", "before": _b64(b"10|yesterday")}, 400, "invalid_cursor"),
        ({"q": "hello", "before": _b64(b"-5|2024-01-01T00:00:00.000Z")}, 400, "invalid_cursor"),
        ({"q": "hello", "before": _b64(b"\xff\xfe")}, 400, "invalid_cursor"),
        ({"q": "hello", "before": "x" * 500}, 400, "invalid_cursor"),
        ({"q": "hello", "before": ""}, 400, "invalid_cursor"),
        ({"q": "hello", "room_id": "no spaces allowed"}, 422, "invalid_room_id"),
        ({"q": "hello", "room_id": ""}, 422, "invalid_room_id"),
        ({"q": "hello", "room_id": "nosuchroom-" + uuid.uuid4().hex[:8]}, 404, "room_not_found"),
    ],
    ids=[
        "no-q",
        "empty-q",
        "blank-q",
        "punctuation-q",
        "syntax-q",
        "lone-accent-q",
        "long-q",
        "limit-0",
        "limit-101",
        "limit-abc",
        "limit-negative",
        "cursor-garbage",
        "cursor-bad-time",
        "cursor-negative",
        "cursor-not-ascii",
        "cursor-long",
        "cursor-empty",
        "room-id-bad",
        "room-id-empty",
        "room-unknown",
    ],
)
async def test_bad_input_gets_the_error_shape(
    trust_server: Server, params: dict[str, str], status: int, code: str
) -> None:
    async with client(trust_server.url) as http:
        r = await http.get("/chat/search", headers=as_user(uid("u")), params=params)
        assert_error(r, status, code)


async def test_query_of_exactly_the_limit_is_fine(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        body = await search(http, as_user(uid("u")), "ab " * 66 + "ab")  # 200 characters
        assert body == {"results": [], "next_before": None}


async def test_openapi_documents_search(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        spec = (await http.get("/openapi.json")).json()
        op = spec["paths"]["/chat/search"]["get"]
        assert {p["name"] for p in op["parameters"]} >= {"q", "room_id", "limit", "before"}
        schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("/SearchOut")
        assert {"400", "401", "404", "422"} <= set(op["responses"])
