"""Rooms and membership in jwt mode, against a real server: create, list, visibility, join,
leave, members, invites, and who may read, stream and send."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.support import (
    Account,
    Server,
    SSEStream,
    assert_error,
    client,
    open_stream,
    signup,
)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def people(server: Server, *prefixes: str) -> list[Account]:
    return list(await asyncio.gather(*[signup(server, p) for p in prefixes]))


_REGULARS: dict[str, list[Account]] = {}


async def regulars(server: Server, n: int) -> list[Account]:
    """Four accounts shared by this module's tests, to keep password hashing off the clock.

    Sharing is safe because every test makes its own fresh rooms, and membership is per room;
    a test that looks at someone's whole room list signs up a fresh account instead.
    """
    if server.url not in _REGULARS:
        _REGULARS[server.url] = await people(server, "ann", "ben", "cat", "dan")
    return _REGULARS[server.url][:n]


async def create_room(
    http: httpx.AsyncClient, owner: Account, visibility: str, **extra: Any
) -> dict[str, Any]:
    r = await http.post(
        "/chat/rooms",
        headers=owner.auth,
        json={"name": uid("room"), "visibility": visibility, **extra},
    )
    assert r.status_code == 201, r.text
    room: dict[str, Any] = r.json()
    return room


async def send(http: httpx.AsyncClient, who: Account, room: str, text: str) -> httpx.Response:
    return await http.post(
        "/chat/messages", headers=who.auth, json={"room_id": room, "message": text}
    )


async def texts(http: httpx.AsyncClient, who: Account, room: str) -> list[str]:
    r = await http.get(f"/chat/room/{room}/history", headers=who.auth, params={"limit": 200})
    assert r.status_code == 200, r.text
    return [m["text"] for m in r.json()]


async def member_ids(http: httpx.AsyncClient, who: Account, room: str) -> dict[str, str]:
    r = await http.get(f"/chat/room/{room}/members", headers=who.auth)
    assert r.status_code == 200, r.text
    return {m["user_id"]: m["role"] for m in r.json()["members"]}


def member_events(s: SSEStream, name: str) -> list[dict[str, Any]]:
    return [e.json() for e in s.named(name)]


_ROOMLESS: dict[str, Account] = {}


async def roomless(server: Server) -> Account:
    """An account that never manages to create a room (shared by the invalid-room tests)."""
    if server.url not in _ROOMLESS:
        [_ROOMLESS[server.url]] = await people(server, "roomless")
    return _ROOMLESS[server.url]


# --- create and list --------------------------------------------------------------------------


@pytest.mark.parametrize("visibility", ["public", "private"])
async def test_create_room_returns_the_room(jwt_server: Server, visibility: str) -> None:
    [me] = await regulars(jwt_server, 1)
    async with client(jwt_server.url) as http:
        name = f"Room {uuid.uuid4().hex[:6]}"
        r = await http.post(
            "/chat/rooms", headers=me.auth, json={"name": name, "visibility": visibility}
        )
        assert r.status_code == 201, r.text
        room = r.json()
        assert room["id"]
        assert room["name"] == name
        assert room["visibility"] == visibility
        assert room["member"] is True
        assert room["role"] == "admin"
        assert room["last_seq"] == 0
        details = await http.get(f"/chat/room/{room['id']}", headers=me.auth)
        assert details.status_code == 200
        assert details.json() == room
        assert await member_ids(http, me, room["id"]) == {me.id: "admin"}
        # the creator can send at once
        r = await send(http, me, room["id"], "first")
        assert r.status_code == 201, r.text
        assert r.json()["message"]["seq"] == 1


async def test_default_visibility_is_public(jwt_server: Server) -> None:
    [me] = await regulars(jwt_server, 1)
    async with client(jwt_server.url) as http:
        r = await http.post("/chat/rooms", headers=me.auth, json={"name": "no visibility"})
        assert r.status_code == 201, r.text
        assert r.json()["visibility"] == "public"


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "n" * 101},
        {"name": "ok", "visibility": "secret"},
        {"name": "ok", "visibility": None},
        {"name": 42},
        {},
        {"name": "ok", "id": "has space"},
        {"name": "ok", "id": "x" * 65},
        {"name": "ok", "id": "slash/y"},
    ],
    ids=[
        "empty-name",
        "blank-name",
        "long-name",
        "bad-visibility",
        "null-visibility",
        "name-number",
        "no-name",
        "id-space",
        "id-too-long",
        "id-slash",
    ],
)
async def test_invalid_room_is_422_and_not_created(
    jwt_server: Server, body: dict[str, Any]
) -> None:
    me = await roomless(jwt_server)
    async with client(jwt_server.url) as http:
        before = (await http.get("/chat/rooms", headers=me.auth)).json()["rooms"]
        r = await http.post("/chat/rooms", headers=me.auth, json=body)
        assert_error(r, 422)
        after = (await http.get("/chat/rooms", headers=me.auth)).json()["rooms"]
        assert after == before
        assert not [x for x in after if x["member"]]


async def test_room_list_shows_mine_and_public_but_not_others_private(jwt_server: Server) -> None:
    alice, bob = await regulars(jwt_server, 2)
    [carol] = await people(jwt_server, "fresh")
    async with client(jwt_server.url) as http:
        a_pub = (await create_room(http, alice, "public"))["id"]
        a_priv = (await create_room(http, alice, "private"))["id"]
        b_pub = (await create_room(http, bob, "public"))["id"]
        b_priv = (await create_room(http, bob, "private"))["id"]

        async def listing(who: Account) -> dict[str, dict[str, Any]]:
            r = await http.get("/chat/rooms", headers=who.auth)
            assert r.status_code == 200, r.text
            return {x["id"]: x for x in r.json()["rooms"]}

        seen = await listing(alice)
        assert {a_pub, a_priv, b_pub} <= set(seen)
        assert b_priv not in seen
        assert seen[a_priv]["member"] is True and seen[a_priv]["role"] == "admin"
        assert seen[b_pub]["member"] is False and seen[b_pub]["role"] is None
        assert seen[a_priv]["visibility"] == "private"

        seen = await listing(bob)
        assert {b_pub, b_priv, a_pub} <= set(seen)
        assert a_priv not in seen

        seen = await listing(carol)
        assert {a_pub, b_pub} <= set(seen)
        assert a_priv not in seen and b_priv not in seen
        assert all(not x["member"] for x in seen.values())
        assert all(x["visibility"] == "public" for x in seen.values())


async def test_custom_room_id_conflict_is_409(jwt_server: Server) -> None:
    alice, bob = await regulars(jwt_server, 2)
    async with client(jwt_server.url) as http:
        custom = f"Team.{uuid.uuid4().hex[:8]}:dev~1_x-y"
        room = await create_room(http, alice, "private", id=custom)
        assert room["id"] == custom
        for who in (alice, bob):
            r = await http.post(
                "/chat/rooms",
                headers=who.auth,
                json={"name": "takeover", "visibility": "public", "id": custom},
            )
            assert_error(r, 409, "room_exists")
        details = await http.get(f"/chat/room/{custom}", headers=alice.auth)
        assert details.json() == room
        assert await member_ids(http, alice, custom) == {alice.id: "admin"}
        assert_error(await http.get(f"/chat/room/{custom}", headers=bob.auth), 404)


# --- private rooms ----------------------------------------------------------------------------


async def test_private_room_is_404_to_non_members_everywhere(jwt_server: Server) -> None:
    alice, eve = await regulars(jwt_server, 2)
    async with client(jwt_server.url) as http:
        room = (await create_room(http, alice, "private"))["id"]
        assert (await send(http, alice, room, "for members only")).status_code == 201
        ghost = uid("nonexistent")
        for rid in (room, ghost):
            calls = {
                "details": http.get(f"/chat/room/{rid}", headers=eve.auth),
                "history": http.get(f"/chat/room/{rid}/history", headers=eve.auth),
                "members": http.get(f"/chat/room/{rid}/members", headers=eve.auth),
                "join": http.post(f"/chat/room/{rid}/join", headers=eve.auth),
                "leave": http.post(f"/chat/room/{rid}/leave", headers=eve.auth),
                "invite": http.post(
                    f"/chat/room/{rid}/members", headers=eve.auth, json={"user_id": eve.id}
                ),
                "send": send(http, eve, rid, "hello?"),
                "events": http.get(f"/chat/room/{rid}/events", headers=eve.auth, timeout=5),
            }
            results = await asyncio.gather(*calls.values())
            for what, r in zip(calls, results, strict=True):
                assert r.status_code == 404, (rid == room, what, r.status_code, r.text)
                assert_error(r, 404, "room_not_found")
                assert "for members only" not in r.text
        assert await texts(http, alice, room) == ["for members only"]
        assert await member_ids(http, alice, room) == {alice.id: "admin"}


async def test_invite_to_private_room(jwt_server: Server) -> None:
    alice, bob, carol, dave = await regulars(jwt_server, 4)
    async with client(jwt_server.url) as http:
        room = (await create_room(http, alice, "private"))["id"]
        async with open_stream(http, f"/chat/room/{room}/events", headers=alice.auth) as s:
            r = await http.post(
                f"/chat/room/{room}/members", headers=alice.auth, json={"username": bob.username}
            )
            assert r.status_code == 201, r.text
            assert r.json()["added"] is True
            member = r.json()["member"]
            assert member["user_id"] == bob.id
            assert member["username"] == bob.username
            assert member["role"] == "member"

            r = await http.post(
                f"/chat/room/{room}/members", headers=alice.auth, json={"username": bob.username}
            )
            assert r.status_code == 200, r.text
            assert r.json()["added"] is False
            assert r.json()["member"]["user_id"] == bob.id

            r = await http.post(
                f"/chat/room/{room}/members", headers=alice.auth, json={"user_id": carol.id}
            )
            assert r.status_code == 201, r.text
            assert r.json()["added"] is True
            assert r.json()["member"]["username"] == carol.username

            await s.wait_for(lambda st: len(st.named("member_joined")) >= 2)
            await asyncio.sleep(0.2)
            joined = member_events(s, "member_joined")
            assert [(e["user_id"], e["username"]) for e in joined] == [
                (bob.id, bob.username),
                (carol.id, carol.username),
            ]
            assert all(e["room_id"] == room for e in joined)

        for body in ({"username": uid("nobody")}, {"user_id": uid("nobody")}):
            r = await http.post(f"/chat/room/{room}/members", headers=alice.auth, json=body)
            assert_error(r, 404, "user_not_found")
        r = await http.post(f"/chat/room/{room}/members", headers=alice.auth, json={})
        assert_error(r, 422)

        # someone outside the private room cannot add anyone (it does not exist for them)
        r = await http.post(
            f"/chat/room/{room}/members", headers=dave.auth, json={"user_id": dave.id}
        )
        assert_error(r, 404, "room_not_found")
        assert await member_ids(http, alice, room) == {
            alice.id: "admin",
            bob.id: "member",
            carol.id: "member",
        }


async def test_non_member_cannot_invite_to_public_room(jwt_server: Server) -> None:
    alice, mallory, victim = await regulars(jwt_server, 3)
    async with client(jwt_server.url) as http:
        room = (await create_room(http, alice, "public"))["id"]
        r = await http.post(
            f"/chat/room/{room}/members", headers=mallory.auth, json={"user_id": victim.id}
        )
        assert_error(r, 403, "not_a_member")
        assert await member_ids(http, alice, room) == {alice.id: "admin"}


async def test_invited_user_can_read_stream_and_send(jwt_server: Server) -> None:
    alice, bob = await regulars(jwt_server, 2)
    async with client(jwt_server.url) as http:
        room = (await create_room(http, alice, "private"))["id"]
        assert (await send(http, alice, room, "before you came")).status_code == 201
        assert_error(await http.get(f"/chat/room/{room}/history", headers=bob.auth), 404)

        r = await http.post(
            f"/chat/room/{room}/members", headers=alice.auth, json={"user_id": bob.id}
        )
        assert r.status_code == 201, r.text

        assert await texts(http, bob, room) == ["before you came"]
        details = (await http.get(f"/chat/room/{room}", headers=bob.auth)).json()
        assert details["member"] is True and details["role"] == "member"
        listed = (await http.get("/chat/rooms", headers=bob.auth)).json()["rooms"]
        assert room in [x["id"] for x in listed]
        async with (
            open_stream(http, f"/chat/room/{room}/events", headers=bob.auth) as bob_s,
            open_stream(http, f"/chat/room/{room}/events", headers=alice.auth) as alice_s,
        ):
            assert bob_s.status == 200
            r = await send(http, bob, room, "thanks for the invite")
            assert r.status_code == 201, r.text
            assert r.json()["message"]["user_id"] == bob.id
            assert r.json()["message"]["seq"] == 2
            for s in (alice_s, bob_s):
                [msg] = await s.wait_messages(1)
                assert msg["text"] == "thanks for the invite"
        assert await texts(http, alice, room) == ["before you came", "thanks for the invite"]


# --- public rooms -----------------------------------------------------------------------------


async def test_public_room_readable_by_non_member_but_not_writable(jwt_server: Server) -> None:
    alice, carol = await regulars(jwt_server, 2)
    async with client(jwt_server.url) as http:
        room = (await create_room(http, alice, "public"))["id"]
        assert (await send(http, alice, room, "open to all")).status_code == 201

        details = await http.get(f"/chat/room/{room}", headers=carol.auth)
        assert details.status_code == 200
        assert details.json()["member"] is False
        assert details.json()["role"] is None
        assert await texts(http, carol, room) == ["open to all"]
        members = await http.get(f"/chat/room/{room}/members", headers=carol.auth)
        assert members.status_code == 200

        async with open_stream(http, f"/chat/room/{room}/events", headers=carol.auth) as s:
            assert s.status == 200
            r = await send(http, carol, room, "may I?")
            assert_error(r, 403, "not_a_member")
            assert (await send(http, alice, room, "second")).status_code == 201
            msgs = await s.wait_messages(1)
            await asyncio.sleep(0.2)
            assert [m["text"] for m in s.messages()] == ["second"]
            assert msgs[0]["seq"] == 2
        assert await texts(http, alice, room) == ["open to all", "second"]
        assert carol.id not in await member_ids(http, alice, room)


async def test_join_streams_member_joined_and_allows_sending(jwt_server: Server) -> None:
    alice, bob = await regulars(jwt_server, 2)
    async with client(jwt_server.url) as http:
        room = (await create_room(http, alice, "public"))["id"]
        async with open_stream(http, f"/chat/room/{room}/events", headers=alice.auth) as s:
            r = await http.post(f"/chat/room/{room}/join", headers=bob.auth)
            assert r.status_code == 200, r.text
            assert r.json()["joined"] is True
            assert r.json()["room"]["id"] == room
            assert r.json()["room"]["member"] is True
            assert r.json()["room"]["role"] == "member"
            await s.wait_for(lambda st: bool(st.named("member_joined")))
            [event] = member_events(s, "member_joined")
            assert event == {"room_id": room, "user_id": bob.id, "username": bob.username}

            again = await http.post(f"/chat/room/{room}/join", headers=bob.auth)
            assert again.status_code == 200
            assert again.json()["joined"] is False

            r = await send(http, bob, room, "hi all")
            assert r.status_code == 201, r.text
            await s.wait_messages(1)
            await asyncio.sleep(0.2)
            assert len(member_events(s, "member_joined")) == 1
        assert await member_ids(http, alice, room) == {alice.id: "admin", bob.id: "member"}


async def test_join_private_room_is_404(jwt_server: Server) -> None:
    alice, bob = await regulars(jwt_server, 2)
    async with client(jwt_server.url) as http:
        room = (await create_room(http, alice, "private"))["id"]
        assert_error(await http.post(f"/chat/room/{room}/join", headers=bob.auth), 404)
        assert await member_ids(http, alice, room) == {alice.id: "admin"}


async def test_leave_streams_member_left_and_stops_sending(jwt_server: Server) -> None:
    alice, bob = await regulars(jwt_server, 2)
    async with client(jwt_server.url) as http:
        room = (await create_room(http, alice, "public"))["id"]
        assert (await http.post(f"/chat/room/{room}/join", headers=bob.auth)).status_code == 200
        assert (await send(http, bob, room, "bye soon")).status_code == 201
        async with open_stream(http, f"/chat/room/{room}/events", headers=alice.auth) as s:
            r = await http.post(f"/chat/room/{room}/leave", headers=bob.auth)
            assert r.status_code == 200, r.text
            assert r.json() == {"left": True}
            await s.wait_for(lambda st: bool(st.named("member_left")))
            [event] = member_events(s, "member_left")
            assert event == {"room_id": room, "user_id": bob.id, "username": bob.username}

            again = await http.post(f"/chat/room/{room}/leave", headers=bob.auth)
            assert again.status_code == 200
            assert again.json() == {"left": False}

            assert_error(await send(http, bob, room, "still here?"), 403, "not_a_member")
            await asyncio.sleep(0.2)
            assert s.messages() == []
            assert len(member_events(s, "member_left")) == 1
        assert await member_ids(http, alice, room) == {alice.id: "admin"}
        assert await texts(http, alice, room) == ["bye soon"]
        details = (await http.get(f"/chat/room/{room}", headers=bob.auth)).json()
        assert details["member"] is False


async def test_leaving_a_private_room_hides_it(jwt_server: Server) -> None:
    alice, bob = await regulars(jwt_server, 2)
    async with client(jwt_server.url) as http:
        room = (await create_room(http, alice, "private"))["id"]
        r = await http.post(
            f"/chat/room/{room}/members", headers=alice.auth, json={"user_id": bob.id}
        )
        assert r.status_code == 201
        assert await texts(http, bob, room) == []
        r = await http.post(f"/chat/room/{room}/leave", headers=bob.auth)
        assert r.json() == {"left": True}
        assert_error(await http.get(f"/chat/room/{room}/history", headers=bob.auth), 404)
        listed = (await http.get("/chat/rooms", headers=bob.auth)).json()["rooms"]
        assert room not in [x["id"] for x in listed]


async def test_members_list(jwt_server: Server) -> None:
    alice, bob, carol = await regulars(jwt_server, 3)
    async with client(jwt_server.url) as http:
        room = (await create_room(http, alice, "public"))["id"]
        for who in (bob, carol):
            assert (await http.post(f"/chat/room/{room}/join", headers=who.auth)).status_code == 200
        r = await http.get(f"/chat/room/{room}/members", headers=bob.auth)
        assert r.status_code == 200, r.text
        members = {m["user_id"]: m for m in r.json()["members"]}
        assert set(members) == {alice.id, bob.id, carol.id}
        assert members[alice.id]["role"] == "admin"
        assert members[bob.id]["role"] == "member"
        assert members[carol.id]["username"] == carol.username
        assert all(m["joined_at"].endswith("Z") for m in members.values())


async def test_room_admin_may_delete_any_message_members_may_not(jwt_server: Server) -> None:
    alice, bob = await regulars(jwt_server, 2)
    async with client(jwt_server.url) as http:
        room = (await create_room(http, alice, "public"))["id"]
        assert (await http.post(f"/chat/room/{room}/join", headers=bob.auth)).status_code == 200
        mine = (await send(http, alice, room, "admin says")).json()["message"]["id"]
        theirs = (await send(http, bob, room, "spam")).json()["message"]["id"]
        assert_error(
            await http.delete(f"/chat/messages/{mine}", headers=bob.auth), 403, "not_message_owner"
        )
        r = await http.delete(f"/chat/messages/{theirs}", headers=alice.auth)
        assert r.status_code == 200, r.text
        assert r.json()["deleted"] is True
        # an admin may delete, not rewrite, someone else's words
        other = (await send(http, bob, room, "my words")).json()["message"]["id"]
        assert_error(
            await http.patch(f"/chat/messages/{other}", headers=alice.auth, json={"message": "x"}),
            403,
            "not_message_owner",
        )
        assert await texts(http, alice, room) == ["admin says", "", "my words"]
