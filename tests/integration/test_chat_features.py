"""Typing, presence, reactions, read receipts and unread counts, end to end over HTTP + SSE."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support import Server, assert_error, client, open_stream, say, user

FAST = [
    "--presence-grace",
    "1",
    "--typing-timeout",
    "0.6",
    "--ping-interval",
    "0.5",
    "--stale-timeout",
    "2",
]


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Trust mode with short presence grace, typing timeout and stale timeout."""
    server = Server(
        tmp_path_factory.mktemp("features"),
        auth="trust",
        args=FAST,
        env={"HUBBUB_RATE_LIMIT_PER_SECOND": "0"},
    )
    server.start()
    yield server
    server.stop()


def room_name() -> str:
    return "r" + secrets.token_hex(4)


# typing ------------------------------------------------------------------------------------


async def test_typing_reaches_others_is_throttled_and_stops_by_itself(fast_server: Server) -> None:
    room = room_name()
    async with client(fast_server.url) as http:
        async with (
            open_stream(http, f"/chat/room/{room}/events", headers=user("tina")) as tina,
            open_stream(http, f"/chat/room/{room}/events", headers=user("olaf")) as olaf,
        ):
            first = await http.post(
                f"/chat/room/{room}/typing", headers=user("tina"), json={"is_typing": True}
            )
            assert first.status_code == 200
            assert first.json()["broadcast"] is True
            for _ in range(5):  # every keystroke: renewals, not broadcasts
                r = await http.post(
                    f"/chat/room/{room}/typing", headers=user("tina"), json={"is_typing": True}
                )
                assert r.json()["broadcast"] is False
            await olaf.wait_for(lambda s: len(s.named("typing")) >= 2, timeout=5)
            events = [e.json() for e in olaf.named("typing")]
            assert events[0] == {
                "user_id": "tina",
                "room_id": room,
                "is_typing": True,
                "username": "tina",
            }
            assert events[1]["is_typing"] is False  # ended by itself after the timeout
            assert len(events) == 2
            assert tina.named("typing") == []  # not echoed to the typist


async def test_typing_false_and_sending_end_the_indicator(fast_server: Server) -> None:
    room = room_name()
    async with client(fast_server.url) as http:
        async with open_stream(http, f"/chat/room/{room}/events", headers=user("obs")) as obs:
            await say(http, "ted", room, "hello")
            await http.post(
                f"/chat/room/{room}/typing", headers=user("ted"), json={"is_typing": True}
            )
            r = await http.post(
                f"/chat/room/{room}/typing", headers=user("ted"), json={"is_typing": False}
            )
            assert r.json()["broadcast"] is True
            await http.post(
                f"/chat/room/{room}/typing", headers=user("ted"), json={"is_typing": True}
            )
            await say(http, "ted", room, "done typing")
            await obs.wait_for(lambda s: len(s.named("typing")) >= 4, timeout=5)
            states = [e.json()["is_typing"] for e in obs.named("typing")]
            assert states == [True, False, True, False]


async def test_typing_bad_input_and_non_member(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        for name in ("typa", "typb"):
            await http.post(
                "/auth/register", json={"username": name + "xx", "password": "pw-123456"}
            )
        tok = {}
        for name in ("typa", "typb"):
            r = await http.post(
                "/auth/login", json={"username": name + "xx", "password": "pw-123456"}
            )
            tok[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        room = (
            await http.post(
                "/chat/rooms", headers=tok["typa"], json={"name": "t", "visibility": "public"}
            )
        ).json()["id"]
        r = await http.post(
            f"/chat/room/{room}/typing", headers=tok["typb"], json={"is_typing": True}
        )
        assert_error(r, 403, "not_a_member")
        r = await http.post(
            f"/chat/room/{room}/typing", headers=tok["typa"], json={"is_typing": "yes please"}
        )
        assert_error(r, 422)
        r = await http.post(f"/chat/room/{room}/typing", headers=tok["typa"], json={})
        assert_error(r, 422)


# presence ----------------------------------------------------------------------------------


def presence_of(stream: object, who: str) -> list[str]:
    return [
        e.json()["status"]
        for e in stream.named("presence")  # type: ignore[attr-defined]
        if e.json()["user_id"] == who
    ]


async def test_presence_online_then_offline_after_grace(fast_server: Server) -> None:
    room = room_name()
    async with client(fast_server.url) as http:
        await say(http, "pat", room, "I live here")
        async with open_stream(http, f"/chat/room/{room}/events", headers=user("obs2")) as obs:
            async with open_stream(http, f"/chat/room/{room}/events", headers=user("pat")):
                await obs.wait_for(lambda s: presence_of(s, "pat") == ["online"], timeout=5)
                members = (
                    await http.get(f"/chat/room/{room}/members", headers=user("obs2"))
                ).json()["members"]
                assert {m["user_id"]: m["presence"] for m in members}["pat"] == "online"
            await asyncio.sleep(0.3)
            assert presence_of(obs, "pat") == ["online"]  # still within the grace
            await obs.wait_for(lambda s: presence_of(s, "pat") == ["online", "offline"], timeout=5)
            members = (await http.get(f"/chat/room/{room}/members", headers=user("obs2"))).json()[
                "members"
            ]
            assert {m["user_id"]: m["presence"] for m in members}["pat"] == "offline"


async def test_quick_reconnect_does_not_flap(fast_server: Server) -> None:
    room = room_name()
    async with client(fast_server.url) as http:
        await say(http, "flo", room, "hi")
        async with open_stream(http, f"/chat/room/{room}/events", headers=user("obs3")) as obs:
            for _ in range(3):
                async with open_stream(http, f"/chat/room/{room}/events", headers=user("flo")):
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.2)  # well within the 1 s grace
            async with open_stream(http, f"/chat/room/{room}/events", headers=user("flo")):
                await asyncio.sleep(1.5)
                assert presence_of(obs, "flo") == ["online"]


async def test_away_and_back(fast_server: Server) -> None:
    room = room_name()
    async with client(fast_server.url) as http:
        await say(http, "amy", room, "hi")
        async with (
            open_stream(http, f"/chat/room/{room}/events", headers=user("obs4")) as obs,
            open_stream(http, f"/chat/room/{room}/events", headers=user("amy")),
        ):
            r = await http.put("/chat/presence", headers=user("amy"), json={"status": "away"})
            assert r.status_code == 200
            assert r.json() == {"user_id": "amy", "status": "away"}
            r = await http.put("/chat/presence", headers=user("amy"), json={"status": "online"})
            assert r.json()["status"] == "online"
            await obs.wait_for(
                lambda s: presence_of(s, "amy") == ["online", "away", "online"], timeout=5
            )
            r = await http.put("/chat/presence", headers=user("amy"), json={"status": "asleep"})
            assert_error(r, 422)


def _netns_available() -> bool:
    if os.geteuid() != 0:
        return False
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True)
    return probe.returncode == 0


@contextlib.contextmanager
def isolated_host() -> Iterator[tuple[str, str, str]]:
    """A network namespace joined to this host by a veth pair: (netns, host_ip, veth_host)."""
    tag = secrets.token_hex(3)
    ns, host_if, ns_if = f"hb{tag}", f"hbh{tag}", f"hbn{tag}"
    octet = int(tag[:2], 16) % 200 + 20
    host_ip, ns_ip = f"10.{octet}.{int(tag[2:4], 16)}.1", f"10.{octet}.{int(tag[2:4], 16)}.2"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    ip("netns", "add", ns)
    try:
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        ip("link", "set", ns_if, "netns", ns)
        ip("addr", "add", f"{host_ip}/24", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/24", "dev", ns_if)
        ip("netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, host_ip, host_if
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


async def test_connection_that_dies_silently_goes_offline(tmp_path: Path) -> None:
    """The peer vanishes without FIN or RST; unacknowledged pings end it (TCP_USER_TIMEOUT)."""
    if not _netns_available():
        if os.environ.get("CI") == "true":
            pytest.fail("network namespaces are needed (root and iproute2) under CI")
        pytest.skip("needs root and `ip netns` to make a connection die silently")
    with isolated_host() as (ns, host_ip, host_if):
        server = Server(
            tmp_path,
            auth="trust",
            args=[*FAST, "--force-trust"],
            host=host_ip,
            env={"HUBBUB_RATE_LIMIT_PER_SECOND": "0"},
        )
        server_url = server.url
        ghost = None
        try:
            server.start()
            room = room_name()
            async with client(server_url) as http:
                await say(http, "ghost", room, "boo")
                async with open_stream(
                    http, f"/chat/room/{room}/events", headers=user("watcher")
                ) as obs:
                    ghost = subprocess.Popen(
                        [
                            "ip",
                            "netns",
                            "exec",
                            ns,
                            sys.executable,
                            "-c",
                            GHOST,
                            f"{server_url}/chat/room/{room}/events?user_id=ghost",
                        ],
                        stdout=subprocess.PIPE,
                    )
                    await obs.wait_for(lambda s: presence_of(s, "ghost") == ["online"], timeout=10)
                    subprocess.run(["ip", "link", "set", host_if, "down"], check=True)
                    ghost.kill()  # nothing it sends can get out any more
                    await obs.wait_for(
                        lambda s: presence_of(s, "ghost") == ["online", "offline"], timeout=15
                    )
        finally:
            if ghost is not None and ghost.poll() is None:
                ghost.kill()
            server.stop()


GHOST = """
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1]) as r:
    while r.readline():
        pass
"""


# reactions ---------------------------------------------------------------------------------


async def test_reactions_add_remove_duplicate_and_aggregate(fast_server: Server) -> None:
    room = room_name()
    async with client(fast_server.url) as http:
        msg = await say(http, "rita", room, "react to me")
        await say(http, "sam", room, "I am here too")
        async with open_stream(http, f"/chat/room/{room}/events", headers=user("rita")) as s:
            url = f"/chat/messages/{msg['id']}/reactions"
            r = await http.post(url, headers=user("sam"), json={"reaction": "👍"})
            assert r.status_code == 201
            assert r.json()["reactions"] == {"👍": ["sam"]}
            again = await http.post(url, headers=user("sam"), json={"reaction": "👍"})
            assert again.status_code == 200  # one per user per emoji
            r = await http.post(url, headers=user("rita"), json={"reaction": "👍"})
            r = await http.post(url, headers=user("rita"), json={"reaction": "❤️"})
            assert r.json()["reactions"] == {"👍": ["sam", "rita"], "❤️": ["rita"]}
            r = await http.delete(f"{url}/{quote('👍')}", headers=user("sam"))
            assert r.status_code == 200
            assert r.json()["reactions"] == {"👍": ["rita"], "❤️": ["rita"]}
            await s.wait_for(lambda st: len(st.named("reaction")) >= 4, timeout=5)
            events = [e.json() for e in s.named("reaction")]
            assert [(e["user_id"], e["reaction"], e["action"]) for e in events] == [
                ("sam", "👍", "added"),
                ("rita", "👍", "added"),
                ("rita", "❤️", "added"),
                ("sam", "👍", "removed"),
            ]
            assert all(e["message_id"] == msg["id"] for e in events)
        history = (await http.get(f"/chat/room/{room}/history", headers=user("rita"))).json()
        assert history[0]["reactions"] == {"👍": ["rita"], "❤️": ["rita"]}
        # A resuming stream replays messages with their current reactions.
        async with open_stream(
            http, f"/chat/room/{room}/events", headers={**user("rita"), "Last-Event-ID": "0"}
        ) as again_stream:
            replayed = await again_stream.wait_messages(2)
            assert replayed[0]["reactions"] == {"👍": ["rita"], "❤️": ["rita"]}


async def test_reaction_rules(fast_server: Server) -> None:
    room = room_name()
    async with client(fast_server.url) as http:
        msg = await say(http, "vic", room, "hello")
        url = f"/chat/messages/{msg['id']}/reactions"
        for bad in ("", "two words", "x" * 33, "\n"):
            r = await http.post(url, headers=user("vic"), json={"reaction": bad})
            assert_error(r, 422, "invalid_reaction" if bad != "" else None)
        r = await http.post(
            "/chat/messages/nope/reactions", headers=user("vic"), json={"reaction": "👍"}
        )
        assert_error(r, 404, "message_not_found")
        # Trust mode: reacting is first use of the room, as sending is (API.md "Who receives
        # what"); jwt mode refuses a non-member (test_jwt_reaction_needs_membership).
        r = await http.post(url, headers=user("outsider"), json={"reaction": "👍"})
        assert r.status_code == 201, r.text
        members = (await http.get(f"/chat/room/{room}/members", headers=user("vic"))).json()
        assert "outsider" in [m["user_id"] for m in members["members"]]
        await http.post(url, headers=user("vic"), json={"reaction": "🎉"})
        assert (
            await http.delete(f"/chat/messages/{msg['id']}", headers=user("vic"))
        ).status_code == 200
        r = await http.post(url, headers=user("vic"), json={"reaction": "👍"})
        assert_error(r, 409, "message_deleted")
        history = (await http.get(f"/chat/room/{room}/history", headers=user("vic"))).json()
        assert history[0]["deleted"] is True
        assert history[0]["reactions"] == {}


# read receipts and unread counts -----------------------------------------------------------


async def test_unread_counts_follow_read_receipts(fast_server: Server) -> None:
    room = room_name()
    async with client(fast_server.url) as http:
        await say(http, "uma", room, "first")
        async with open_stream(http, f"/chat/room/{room}/events", headers=user("uri")) as s:
            for i in range(5):
                await say(http, "uma", room, f"news {i}")

            def mine(rooms: list[dict[str, object]]) -> dict[str, object]:
                return next(r for r in rooms if r["id"] == room)

            listed = mine((await http.get("/chat/rooms", headers=user("uri"))).json()["rooms"])
            assert listed["unread"] == 6
            assert listed["last_message"]["text"] == "news 4"  # type: ignore[index]
            sender_view = mine((await http.get("/chat/rooms", headers=user("uma"))).json()["rooms"])
            assert sender_view["unread"] == 0  # sending counts as reading

            r = await http.post(f"/chat/room/{room}/read", headers=user("uri"), json={"seq": 4})
            assert r.status_code == 200
            assert r.json() == {"room_id": room, "seq": 4, "unread": 2}
            back = await http.post(f"/chat/room/{room}/read", headers=user("uri"), json={"seq": 2})
            assert back.json() == {"room_id": room, "seq": 4, "unread": 2}  # never backwards
            listed = mine((await http.get("/chat/rooms", headers=user("uri"))).json()["rooms"])
            assert listed["unread"] == 2
            await s.wait_for(lambda st: bool(st.named("read")), timeout=5)
            await asyncio.sleep(0.2)
            assert [e.json() for e in s.named("read")] == [
                {"room_id": room, "user_id": "uri", "seq": 4}
            ]
            r = await http.post(f"/chat/room/{room}/read", headers=user("uri"), json={"seq": 99})
            assert_error(r, 422, "invalid_seq")
            r = await http.post(f"/chat/room/{room}/read", headers=user("uri"), json={"seq": -1})
            assert_error(r, 422)
            # Trust mode: reading is first use of the room (it joins, as sending does).
            r = await http.post(f"/chat/room/{room}/read", headers=user("nobody"), json={"seq": 1})
            assert r.status_code == 200, r.text
