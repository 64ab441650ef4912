"""The server API (API.md "Server API (your backend)") against real servers: server keys and
their rotation, messages as a user or as ``system``, notifications (stored, streamed, replayed on
resume), live broadcasts, and provisioning users and memberships (removal revokes at once)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import Server, assert_error, client, open_stream, signup, user

KEYS = "old-key-0123456789abcdef,new-key-0123456789abcdef"
OLD = {"Authorization": "Bearer old-key-0123456789abcdef"}
NEW = {"Authorization": "Bearer new-key-0123456789abcdef"}


@pytest.fixture(scope="module")
def jwt_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("srvapi-jwt"), auth="jwt", args=["--server-key", KEYS])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def trust_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("srvapi-trust"),
        auth="trust",
        env={"HUBBUB_SERVER_KEY": KEYS, "HUBBUB_RATE_LIMIT_BURST": "1000"},
    )
    server.start()
    yield server
    server.stop()


async def test_server_key_is_required_and_user_tokens_are_403(jwt_api: Server) -> None:
    alice = await signup(jwt_api, "keys")
    async with client(jwt_api.url) as http:
        body = {"event": "x", "data": {}}
        url = f"/server/users/{alice.id}/notifications"
        assert_error(await http.post(url, json=body), 401, "server_key_required")
        assert_error(await http.post(url, json=body, headers=alice.auth), 403, "not_a_server_key")
        wrong = {"Authorization": "Bearer old-key-0123456789abcdeX"}
        assert_error(await http.post(url, json=body, headers=wrong), 403, "not_a_server_key")
        assert_error(await http.post(url, json=body, headers={"Authorization": "Basic x"}), 401)
        # both keys of a rotation work
        assert (await http.post(url, json=body, headers=OLD)).status_code == 201
        assert (await http.post(url, json=body, headers=NEW)).status_code == 201


async def test_server_api_is_off_without_a_key(tmp_path: Path) -> None:
    server = Server(tmp_path / "off", auth="jwt").start()
    try:
        async with client(server.url) as http:
            r = await http.post("/server/users", json={"user_id": "u1"}, headers=OLD)
            assert_error(r, 403, "server_api_disabled")
    finally:
        server.stop()


async def test_messages_as_user_and_as_system_with_idempotency(jwt_api: Server) -> None:
    alice = await signup(jwt_api, "msg")
    async with client(jwt_api.url) as http:
        r = await http.post("/chat/rooms", json={"name": "Orders"}, headers=alice.auth)
        room = r.json()["id"]
        async with open_stream(http, f"/chat/room/{room}/events", headers=alice.auth) as stream:
            url = f"/server/rooms/{room}/messages"
            r = await http.post(url, json={"message": "build #42 finished"}, headers=NEW)
            assert r.status_code == 201, r.text
            system = r.json()["message"]
            assert (system["type"], system["user_id"], system["text"]) == (
                "system",
                "system",
                "build #42 finished",
            )
            body = {"message": "on behalf", "user_id": alice.id, "client_msg_id": "srv-1"}
            r = await http.post(url, json=body, headers=NEW)
            assert r.status_code == 201, r.text
            as_alice = r.json()["message"]
            assert (as_alice["user_id"], as_alice["username"]) == (alice.id, alice.username)
            again = await http.post(url, json=body, headers=OLD)
            assert again.status_code == 200 and again.json()["message"]["id"] == as_alice["id"]
            got = await stream.wait_messages(2)
            assert [m["text"] for m in got] == ["build #42 finished", "on behalf"]
        history = (await http.get(f"/chat/room/{room}/history", headers=alice.auth)).json()
        assert [m["text"] for m in history] == ["build #42 finished", "on behalf"]
        # errors change nothing
        assert_error(await http.post(url, json={"message": " "}, headers=NEW), 422)
        assert_error(
            await http.post("/server/rooms/nope/messages", json={"message": "x"}, headers=NEW),
            404,
            "room_not_found",
        )
        stranger = {"message": "x", "user_id": "no-such-user"}
        assert_error(await http.post(url, json=stranger, headers=NEW), 404, "user_not_found")
        bob = await signup(jwt_api, "notmember")
        r = await http.post(url, json={"message": "x", "user_id": bob.id}, headers=NEW)
        assert_error(r, 403, "not_a_member")
        malformed = {**NEW, "Content-Type": "application/json"}
        assert_error(await http.post(url, content=b"{nope", headers=malformed), 400)
        history = (await http.get(f"/chat/room/{room}/history", headers=alice.auth)).json()
        assert len(history) == 2


async def test_notifications_reach_events_and_websocket_and_replay(jwt_api: Server) -> None:
    import websockets

    alice = await signup(jwt_api, "notify")
    async with client(jwt_api.url) as http:
        ws_url = jwt_api.url.replace("http", "ws") + "/chat/ws"
        async with (
            open_stream(http, "/chat/events", headers=alice.auth) as events,
            websockets.connect(ws_url, additional_headers=alice.auth) as ws,
        ):
            url = f"/server/users/{alice.id}/notifications"
            r = await http.post(
                url, json={"event": "order.created", "data": {"order": 7}}, headers=NEW
            )
            assert r.status_code == 201, r.text
            sent = r.json()["notification"]
            assert (sent["event"], sent["data"]) == ("order.created", {"order": 7})
            await events.wait_for(lambda s: bool(s.named("notification")))
            [note] = events.named("notification")
            assert note.json() == {
                "event": "order.created",
                "data": {"order": 7},
                "created_at": sent["created_at"],
            }
            assert note.id == sent["id"]
            frame: dict[str, object] = {}
            while frame.get("event") != "notification":
                frame = __import__("json").loads(await asyncio.wait_for(ws.recv(), 10))
            assert frame["data"] == note.json()
            cursor = note.id
        # two more while away: a resume from the first one's id replays exactly those
        for n in (8, 9):
            r = await http.post(url, json={"event": "order.created", "data": n}, headers=OLD)
            assert r.status_code == 201
        async with open_stream(
            http, "/chat/events", headers={**alice.auth, "Last-Event-ID": str(cursor)}
        ) as resumed:
            await resumed.wait_for(lambda s: len(s.named("notification")) >= 2)
            await asyncio.sleep(0.3)
            assert [e.json()["data"] for e in resumed.named("notification")] == [8, 9]
        # someone else's stream never sees it
        bob = await signup(jwt_api, "other")
        async with open_stream(http, "/chat/events", headers=bob.auth) as bobs:
            r = await http.post(url, json={"event": "private", "data": 1}, headers=NEW)
            assert r.status_code == 201
            await asyncio.sleep(0.5)
            assert bobs.named("notification") == []
        assert_error(
            await http.post("/server/users/ghost/notifications", json={"event": "x"}, headers=NEW),
            404,
            "user_not_found",
        )
        assert_error(await http.post(url, json={"event": ""}, headers=NEW), 422)
        assert_error(await http.post(url, json={"data": 1}, headers=NEW), 422)


async def test_broadcast_is_live_only_and_names_are_checked(trust_api: Server) -> None:
    async with client(trust_api.url) as http:
        await http.post(
            "/chat/messages", headers=user("bc-a"), json={"room_id": "bc", "message": "hi"}
        )
        async with open_stream(http, "/chat/room/bc/events", params={"user_id": "bc-a"}) as s:
            r = await http.post(
                "/server/rooms/bc/broadcast",
                json={"event": "deploy.started", "data": {"v": "1.2"}},
                headers=NEW,
            )
            assert r.status_code == 200, r.text
            await s.wait_for(lambda st: bool(st.named("deploy.started")))
            [ev] = s.named("deploy.started")
            assert ev.json() == {"v": "1.2"} and ev.id is None
        # live only: a resume from the start does not bring it back
        async with open_stream(
            http, "/chat/room/bc/events", params={"user_id": "bc-a", "last_event_id": "0"}
        ) as again:
            await again.wait_messages(1)
            await asyncio.sleep(0.3)
            assert again.named("deploy.started") == []
        for bad in ("message", "Deploy", "1x", "a" * 65, "notification", "a b"):
            r = await http.post("/server/rooms/bc/broadcast", json={"event": bad}, headers=NEW)
            assert_error(r, 422, "invalid_event")
        r = await http.post("/server/rooms/none-such/broadcast", json={"event": "x"}, headers=NEW)
        assert_error(r, 404, "room_not_found")


async def test_provisioning_users_and_memberships_revokes_at_once(jwt_api: Server) -> None:
    admin = await signup(jwt_api, "prov")
    async with client(jwt_api.url) as http:
        r = await http.post(
            "/chat/rooms", json={"name": "Private", "visibility": "private"}, headers=admin.auth
        )
        room = r.json()["id"]
        r = await http.post(
            "/server/users", json={"user_id": "ext-42", "username": "carol_ext"}, headers=NEW
        )
        assert r.status_code == 201, r.text
        assert r.json() == {"id": "ext-42", "username": "carol_ext"}
        r = await http.post(
            "/server/users", json={"user_id": "ext-42", "username": "carol_ext"}, headers=NEW
        )
        assert r.status_code == 200
        taken = {"user_id": "ext-43", "username": admin.username}
        assert_error(await http.post("/server/users", json=taken, headers=NEW), 409)
        bad = {"user_id": "has space", "username": "x_y"}
        assert_error(await http.post("/server/users", json=bad, headers=NEW), 422)

        members = f"/server/rooms/{room}/members"
        r = await http.post(members, json={"user_id": "ext-42"}, headers=NEW)
        assert r.status_code == 201, r.text
        assert r.json()["user_id"] == "ext-42"
        assert (
            await http.post(members, json={"user_id": "ext-42"}, headers=NEW)
        ).status_code == 200
        listed = (await http.get(f"/chat/room/{room}/members", headers=admin.auth)).json()[
            "members"
        ]
        assert "ext-42" in {m["user_id"] for m in listed}
        assert_error(await http.post(members, json={"user_id": "ghost"}, headers=NEW), 404)

        # ext-42 speaks through the backend; then is removed and stops receiving at once
        carol = await signup(jwt_api, "carol")
        await http.post(members, json={"user_id": carol.id}, headers=NEW)
        async with open_stream(http, f"/chat/room/{room}/events", headers=carol.auth) as s:
            r = await http.delete(f"{members}/{carol.id}", headers=NEW)
            assert r.status_code == 204
            await s.wait_for(lambda st: st.closed, 2)
        r = await http.get(f"/chat/room/{room}/history", headers=carol.auth)
        assert_error(r, 404)

        # deleting a user: their sessions end, tokens stop working, messages stay
        async with open_stream(http, "/chat/events", headers=carol.auth) as s:
            r = await http.delete(f"/server/users/{carol.id}", headers=NEW)
            assert r.status_code == 204
            await s.wait_for(lambda st: st.closed, 2)
        assert_error(await http.get("/auth/me", headers=carol.auth), 401)
        assert_error(await http.delete(f"/server/users/{carol.id}", headers=NEW), 404)


async def test_trust_mode_server_messages_create_on_first_use(trust_api: Server) -> None:
    async with httpx.AsyncClient(base_url=trust_api.url) as http:
        r = await http.post(
            "/server/rooms/fresh-room/messages",
            json={"message": "hello from the backend", "user_id": "botty"},
            headers=NEW,
        )
        assert r.status_code == 201, r.text
        history = await http.get("/chat/room/fresh-room/history", headers=user("botty"))
        assert [m["text"] for m in history.json()] == ["hello from the backend"]
