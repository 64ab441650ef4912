"""``GET /api/sse`` (seed 000's notification stream) against real servers: the seed's frames,
only the caller's notifications, and resume by ``Last-Event-ID`` with no gap and no duplicate."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support import Server, assert_error, client, open_stream, signup, user

KEY = {"Authorization": "Bearer srv-key-0123456789abcdef"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(
        tmp_path_factory.mktemp("apisse"),
        auth="jwt",
        args=["--server-key", "srv-key-0123456789abcdef"],
    )
    s.start()
    yield s
    s.stop()


async def test_notifications_arrive_as_the_seed_expects_and_resume(server: Server) -> None:
    alice = await signup(server, "sse")
    bob = await signup(server, "ssebob")
    async with client(server.url) as http:
        async with (
            open_stream(http, "/api/sse", headers=alice.auth) as stream,
            open_stream(http, "/api/sse", headers=bob.auth) as bobs,
        ):
            [hello] = stream.named("connected")
            assert hello.json() == {"status": "ok"}
            assert stream.headers is not None
            assert stream.headers["content-type"].startswith("text/event-stream")
            for n in (1, 2):
                r = await http.post(
                    f"/server/users/{alice.id}/notifications",
                    json={"event": "order.created", "data": {"title": f"order {n}"}},
                    headers=KEY,
                )
                assert r.status_code == 201, r.text
            got = await stream.wait_messages(2)
            assert got == [{"title": "order 1"}, {"title": "order 2"}]
            first_id = stream.events[-2].id
            assert first_id is not None and first_id.isdigit()
            await asyncio.sleep(0.3)
            assert bobs.messages() == []  # someone else's never arrive
        # two more while away; resume from the first: exactly the three after it, in order
        for n in (3, 4):
            r = await http.post(
                f"/server/users/{alice.id}/notifications",
                json={"event": "order.created", "data": {"title": f"order {n}"}},
                headers=KEY,
            )
            assert r.status_code == 201
        async with open_stream(
            http, "/api/sse", headers={**alice.auth, "Last-Event-ID": first_id}
        ) as resumed:
            got = await resumed.wait_messages(3)
            await asyncio.sleep(0.3)
            assert resumed.messages() == [{"title": f"order {n}"} for n in (2, 3, 4)]
            ids = [e.id for e in resumed.events if e.event == "message"]
            assert ids == sorted(ids, key=int) and len(set(ids)) == 3
        # a fresh stream starts live: nothing old comes back
        async with open_stream(http, "/api/sse", headers=alice.auth) as fresh:
            await asyncio.sleep(0.3)
            assert fresh.messages() == []


async def test_bad_cursor_and_no_identity_are_refused(server: Server) -> None:
    alice = await signup(server, "ssebad")
    async with client(server.url) as http:
        for bad in ("abc", "-1", "1" * 40, "r5"):
            r = await http.get("/api/sse", headers={**alice.auth, "Last-Event-ID": bad})
            assert_error(r, 400, "invalid_cursor")
        assert_error(await http.get("/api/sse"), 401)


async def test_trust_mode_guest_cookie_stream(tmp_path_factory: pytest.TempPathFactory) -> None:
    s = Server(
        tmp_path_factory.mktemp("apisse-trust"),
        auth="trust",
        env={"HUBBUB_SERVER_KEY": "srv-key-0123456789abcdef"},
    ).start()
    try:
        async with client(s.url) as http:
            async with open_stream(http, "/api/sse", headers=user("guesty")) as stream:
                r = await http.post(
                    "/server/users/guesty/notifications",
                    json={"event": "build", "data": "finished"},
                    headers=KEY,
                )
                assert r.status_code == 201, r.text
                assert await stream.wait_messages(1) == ["finished"]
    finally:
        s.stop()


async def test_a_notification_sent_the_moment_the_head_arrives_is_delivered(
    server: Server,
) -> None:
    """The seed's hook counts itself connected on ``onopen`` (the response head): the stream
    must already be listening then, not only once ``connected`` arrives."""
    alice = await signup(server, "onopen")
    host, port = server.host, server.port
    async with client(server.url) as http:
        for n in range(10):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                b"GET /api/sse HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n\r\n"
                % (host.encode(), port, alice.token.encode())
            )
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200")
            r = await http.post(
                f"/server/users/{alice.id}/notifications",
                json={"event": "now", "data": {"n": n}},
                headers=KEY,
            )
            assert r.status_code == 201
            seen = b""
            while b'{"n":%d}' % n not in seen:
                seen += await asyncio.wait_for(reader.read(65536), 5)
            writer.close()
