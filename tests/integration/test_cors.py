"""CORS (API.md "CORS"): the listed origins get CORS headers, with credentials, on every chat and
auth route — preflights answered 204, answers and refusals alike, the send fast lane and streams
included — and are trusted by the cross-site checks; any other origin gets none."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import PASSWORD, Server, client, open_stream, signup

APP = "https://app.example.com"
DEV = "http://localhost:5173"
EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("cors"), auth="jwt", args=["--cors-origins", f"{APP},{DEV}"])
    s.start()
    yield s
    s.stop()


def preflight(
    origin: str, method: str = "POST", headers: str = "authorization,content-type"
) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_preflight_is_answered_for_listed_origins_only(server: Server) -> None:
    async with client(server.url) as http:
        for path in ("/chat/messages", "/auth/login", "/chat/room/x/events", "/api/sse"):
            r = await http.options(path, headers=preflight(APP))
            assert r.status_code == 204, (path, r.status_code, r.text)
            assert r.headers["access-control-allow-origin"] == APP
            assert r.headers["access-control-allow-credentials"] == "true"
            assert "POST" in r.headers["access-control-allow-methods"]
            assert r.headers["access-control-allow-headers"] == "authorization,content-type"
            assert "Origin" in r.headers["vary"]
        r = await http.options("/chat/messages", headers=preflight(DEV, "PATCH", "user-id"))
        assert r.status_code == 204 and r.headers["access-control-allow-origin"] == DEV
        for origin in (EVIL, APP + ".evil.example", "null", "https://app.example.com:444"):
            r = await http.options("/chat/messages", headers=preflight(origin))
            assert "access-control-allow-origin" not in r.headers, origin
            assert r.status_code != 204 or not r.headers.get("access-control-allow-methods")
        # not a chat or auth route: no CORS, even for a listed origin
        r = await http.options("/server/users", headers=preflight(APP))
        assert "access-control-allow-origin" not in r.headers


async def test_answers_and_refusals_carry_the_headers(server: Server) -> None:
    alice = await signup(server, "cors")
    async with client(server.url) as http:
        r = await http.post(
            "/chat/rooms", json={"name": "C"}, headers={**alice.auth, "Origin": APP}
        )
        assert r.status_code == 201
        assert r.headers["access-control-allow-origin"] == APP
        room = r.json()["id"]
        # the send fast lane (below ASGI)
        r = await http.post(
            "/chat/messages",
            json={"room_id": room, "message": "from the app"},
            headers={**alice.auth, "Origin": APP},
        )
        assert r.status_code == 201, r.text
        assert r.headers["access-control-allow-origin"] == APP
        assert r.headers["access-control-allow-credentials"] == "true"
        # a refusal is readable by the script too
        r = await http.get("/auth/me", headers={"Origin": APP})
        assert r.status_code == 401 and r.headers["access-control-allow-origin"] == APP
        # other origins: no header
        r = await http.get("/auth/me", headers={**alice.auth, "Origin": EVIL})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        r = await http.post(
            "/chat/messages",
            json={"room_id": room, "message": "x"},
            headers={**alice.auth, "Origin": EVIL},
        )
        assert "access-control-allow-origin" not in r.headers
        # a stream keeps working through the CORS wrapper (the SSE fast lane)
        async with open_stream(
            http, "/chat/events", headers={**alice.auth, "Origin": APP}
        ) as stream:
            assert stream.headers is not None
            assert stream.headers["access-control-allow-origin"] == APP
            await http.post(
                "/chat/messages",
                json={"room_id": room, "message": "live"},
                headers=alice.auth,
            )
            got = await stream.wait_messages(1)
            assert got[-1]["text"] == "live"


async def test_cookie_requests_from_a_listed_origin_pass_the_cross_site_check(
    server: Server,
) -> None:
    alice = await signup(server, "corscookie")
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/auth/login", json={"username": alice.username, "password": PASSWORD})
        assert r.status_code == 200 and http.cookies
        r = await http.post("/chat/rooms", json={"name": "Cookie"}, headers={"Origin": APP})
        assert r.status_code == 201, r.text
        r = await http.post("/chat/rooms", json={"name": "Forged"}, headers={"Origin": EVIL})
        assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin"
        assert "access-control-allow-origin" not in r.headers


async def test_no_cors_by_default(tmp_path_factory: pytest.TempPathFactory) -> None:
    s = Server(tmp_path_factory.mktemp("nocors"), auth="jwt").start()
    try:
        async with client(s.url) as http:
            r = await http.options("/chat/messages", headers=preflight(APP))
            assert "access-control-allow-origin" not in r.headers
            r = await http.get("/auth/me", headers={"Origin": APP})
            assert "access-control-allow-origin" not in r.headers
    finally:
        s.stop()
