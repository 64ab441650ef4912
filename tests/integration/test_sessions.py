"""Sessions end everywhere at once: password change, logout, refresh-token reuse, and the
one-time tickets a session hands out — against a real ``hubbub serve`` process (jwt mode).

API.md, "Who receives what": within 1 s of a logout, a session's revocation or a password
change, every stream opened with that session's credentials ends (SSE: the response ends;
WebSocket: close code 4401) and reconnecting with the old credentials gets 401. A ticket opens
only a stream, once, within its lifetime, while its session lives; anywhere else it is 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support import Server, SSEStream, assert_error, client, open_stream

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a much better passphrase"
ENDS_WITHIN = 1.0  # seconds, API.md


@dataclass
class Session:
    """One login: its access token, refresh token and session cookie."""

    user_id: str
    username: str
    token: str
    refresh: str
    cookie: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def cookie_header(self) -> dict[str, str]:
        return {"Cookie": f"hubbub_session={self.cookie}"}


async def register(server: Server, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    async with client(server.url) as http:
        r = await http.post("/auth/register", json={"username": name, "password": PASSWORD})
        assert r.status_code == 201, r.text
    return name


async def login(server: Server, name: str, password: str = PASSWORD) -> Session:
    async with client(server.url) as http:
        r = await http.post("/auth/login", json={"username": name, "password": password})
        assert r.status_code == 200, r.text
        body = r.json()
        cookie = http.cookies.get("hubbub_session")
    assert cookie
    return Session(body["user"]["id"], name, body["access_token"], body["refresh_token"], cookie)


async def two_sessions(server: Server, prefix: str) -> tuple[Session, Session]:
    name = await register(server, prefix)
    return await login(server, name), await login(server, name)


async def ticket(http: httpx.AsyncClient, session: Session) -> str:
    r = await http.post("/auth/ticket", headers=session.auth)
    assert r.status_code == 200, r.text
    return str(r.json()["ticket"])


async def change_password(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    old: str = PASSWORD,
    new: str = NEW_PASSWORD,
) -> httpx.Response:
    return await http.post(
        "/auth/password", headers=headers, json={"old_password": old, "new_password": new}
    )


async def refresh(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/auth/refresh", json={"refresh_token": token})


async def me(http: httpx.AsyncClient, headers: dict[str, str]) -> int:
    return (await http.get("/auth/me", headers=headers)).status_code


async def ends_within(stream: SSEStream, seconds: float = ENDS_WITHIN) -> None:
    started = time.monotonic()
    await stream.wait_for(lambda s: s.closed, timeout=seconds)
    assert time.monotonic() - started <= seconds + 0.2


async def stays_open(stream: SSEStream, seconds: float = 0.5) -> None:
    await asyncio.sleep(seconds)
    assert not stream.closed


def ws_url(server: Server, params: dict[str, str] | None = None) -> str:
    url = "ws" + server.url.removeprefix("http") + "/chat/ws"
    return url + ("?" + urlencode(params) if params else "")


@contextlib.asynccontextmanager
async def websocket(
    server: Server, *, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> AsyncIterator[ClientConnection]:
    conn = await connect(
        ws_url(server, params), additional_headers=headers, ping_interval=None, open_timeout=10
    )
    try:
        yield conn
    finally:
        await conn.close()


async def ws_works(conn: ClientConnection) -> None:
    """The connection is authenticated and usable: a ping gets its pong."""
    await conn.send(json.dumps({"op": "ping", "ref": "alive"}))
    async with asyncio.timeout(5):
        while True:
            frame = json.loads(await conn.recv())
            assert frame["event"] != "error", frame
            if frame["event"] == "pong":
                return


async def ws_close_code(conn: ClientConnection, seconds: float) -> int | None:
    try:
        async with asyncio.timeout(seconds):
            while True:
                await conn.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
    except TimeoutError:
        pytest.fail(f"the WebSocket was still open {seconds} s after its session ended")


# --- password change ---------------------------------------------------------------------------


@pytest.mark.parametrize("caller_auth", ["bearer", "cookie"])
async def test_password_change_revokes_every_other_session(
    jwt_server: Server, caller_auth: str
) -> None:
    mine, other = await two_sessions(jwt_server, "pwchg")
    async with client(jwt_server.url) as http:
        other_ticket = await ticket(http, other)
        assert await me(http, other.auth) == 200

        headers = mine.auth if caller_auth == "bearer" else mine.cookie_header
        r = await change_password(http, headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json")
        assert r.json() == {"status": "password_changed"}

        # the other session is over: access token, cookie, refresh token, ticket
        assert_error(await http.get("/auth/me", headers=other.auth), 401)
        assert_error(await http.get("/auth/me", headers=other.cookie_header), 401)
        assert_error(await http.get("/chat/rooms", headers=other.auth), 401)
        assert_error(await refresh(http, other.refresh), 401)
        r = await http.get("/chat/events", params={"ticket": other_ticket})
        assert_error(r, 401)

        # the caller's own session goes on: access token, cookie, refresh, tickets
        assert await me(http, mine.auth) == 200
        assert await me(http, mine.cookie_header) == 200
        r = await refresh(http, mine.refresh)
        assert r.status_code == 200, r.text
        assert await me(http, {"Authorization": f"Bearer {r.json()['access_token']}"}) == 200
        mine_ticket = await ticket(http, mine)
    async with client(jwt_server.url) as browser:
        async with open_stream(browser, "/chat/events", params={"ticket": mine_ticket}) as s:
            assert s.status == 200

    async with client(jwt_server.url) as http:
        r = await http.post("/auth/login", json={"username": mine.username, "password": PASSWORD})
        assert_error(r, 401)
    again = await login(jwt_server, mine.username, NEW_PASSWORD)
    assert again.user_id == mine.user_id


async def test_password_change_with_the_wrong_old_password_changes_nothing(
    jwt_server: Server,
) -> None:
    mine, other = await two_sessions(jwt_server, "pwbad")
    async with client(jwt_server.url) as http:
        r = await change_password(http, mine.auth, old="not my password")
        assert r.status_code in (401, 403), r.text
        assert_error(r, r.status_code)
        # nothing changed: both sessions live, the old password still signs in
        assert await me(http, mine.auth) == 200
        assert await me(http, other.auth) == 200
        assert (await refresh(http, other.refresh)).status_code == 200
    await login(jwt_server, mine.username, PASSWORD)
    async with client(jwt_server.url) as http:
        r = await http.post(
            "/auth/login", json={"username": mine.username, "password": NEW_PASSWORD}
        )
        assert_error(r, 401)


async def test_a_weak_new_password_is_422(jwt_server: Server) -> None:
    mine, other = await two_sessions(jwt_server, "pwweak")
    async with client(jwt_server.url) as http:
        for weak in ("short", "", mine.username, mine.username.upper(), "password123", "x" * 257):
            r = await change_password(http, mine.auth, new=weak)
            assert_error(r, 422)
        r = await change_password(http, mine.auth, new=mine.username)
        assert_error(r, 422, "weak_password")
        r = await http.post("/auth/password", headers=mine.auth, json={"old_password": PASSWORD})
        assert_error(r, 422)
        assert await me(http, other.auth) == 200
    await login(jwt_server, mine.username, PASSWORD)


async def test_password_change_needs_a_real_session(jwt_server: Server) -> None:
    mine, _ = await two_sessions(jwt_server, "pwanon")
    async with client(jwt_server.url) as http:
        assert_error(await change_password(http, {}), 401)
        t = await ticket(http, mine)
        r = await http.post(
            "/auth/password",
            params={"ticket": t},
            json={"old_password": PASSWORD, "new_password": NEW_PASSWORD},
        )
        assert_error(r, 401)
    await login(jwt_server, mine.username, PASSWORD)


# --- tickets -----------------------------------------------------------------------------------


async def test_a_ticket_opens_a_stream_once(jwt_server: Server) -> None:
    mine, _ = await two_sessions(jwt_server, "tkonce")
    async with client(jwt_server.url) as http:
        r = await http.post("/chat/rooms", headers=mine.auth, json={"name": "tickets"})
        assert r.status_code == 201, r.text
        room = r.json()["id"]
        for path in ("/chat/events", f"/chat/room/{room}/events"):
            t = await ticket(http, mine)
            async with open_stream(http, path, params={"ticket": t}) as s:
                assert s.status == 200
            assert_error(await http.get(path, params={"ticket": t}), 401, "invalid_ticket")
        t = await ticket(http, mine)
        r = await http.get(f"/chat/room/{room}/poll", params={"ticket": t, "timeout": 0})
        assert r.status_code == 200, r.text
        assert r.json() == []
        r = await http.get(f"/chat/room/{room}/poll", params={"ticket": t, "timeout": 0})
        assert_error(r, 401, "invalid_ticket")
        t = await ticket(http, mine)
    async with websocket(jwt_server, params={"ticket": t}) as ws:
        await ws_works(ws)
    async with websocket(jwt_server, params={"ticket": t}) as ws:
        assert await ws_close_code(ws, 5) == 1008


async def test_a_ticket_is_401_off_the_stream_routes(jwt_server: Server) -> None:
    mine, _ = await two_sessions(jwt_server, "tkoff")
    async with client(jwt_server.url) as http:
        t = await ticket(http, mine)
        assert_error(await http.get("/auth/me", params={"ticket": t}), 401)
        assert_error(await http.get("/chat/rooms", params={"ticket": t}), 401)
        # a ticket cannot be traded for more tickets
        assert_error(await http.post("/auth/ticket", params={"ticket": t}), 401)
        r = await http.post(
            "/chat/messages", params={"ticket": t}, json={"room_id": "r1", "message": "hi"}
        )
        assert_error(r, 401)
        r = await http.post("/chat/rooms", params={"ticket": t}, json={"name": "by ticket"})
        assert_error(r, 401)
        assert_error(await http.post("/auth/logout", params={"ticket": t}), 401)
        # the session behind it is untouched
        assert await me(http, mine.auth) == 200


async def test_a_ticket_dies_with_its_session(jwt_server: Server) -> None:
    mine, other = await two_sessions(jwt_server, "tkdead")
    async with client(jwt_server.url) as http:
        dead = await ticket(http, mine)
        alive = await ticket(http, other)
        r = await http.post("/auth/logout", json={"refresh_token": mine.refresh})
        assert r.status_code == 200, r.text
        assert_error(await http.get("/chat/events", params={"ticket": dead}), 401)
        # the same user's other session and its ticket are unaffected
        async with open_stream(http, "/chat/events", params={"ticket": alive}) as s:
            assert s.status == 200


async def test_a_ticket_dies_with_a_reused_refresh_token(jwt_server: Server) -> None:
    mine, _ = await two_sessions(jwt_server, "tkreuse")
    async with client(jwt_server.url) as http:
        t = await ticket(http, mine)
        assert (await refresh(http, mine.refresh)).status_code == 200
        assert_error(await refresh(http, mine.refresh), 401, "refresh_token_reused")
        assert_error(await http.get("/chat/events", params={"ticket": t}), 401)


# --- streams end with their session ------------------------------------------------------------


async def test_logout_ends_the_sessions_streams(jwt_server: Server) -> None:
    mine, other = await two_sessions(jwt_server, "sselogout")
    async with client(jwt_server.url) as http:
        t = await ticket(http, mine)
        async with (
            open_stream(http, "/chat/events", headers=mine.auth) as by_token,
            open_stream(http, "/chat/events", headers=mine.cookie_header) as by_cookie,
            open_stream(http, "/chat/events", params={"ticket": t}) as by_ticket,
            open_stream(http, "/chat/events", headers=other.auth) as bystander,
        ):
            for s in (by_token, by_cookie, by_ticket, bystander):
                assert s.status == 200
            async with client(jwt_server.url) as out:
                r = await out.post("/auth/logout", json={"refresh_token": mine.refresh})
                assert r.status_code == 200, r.text
            await asyncio.gather(*(ends_within(s) for s in (by_token, by_cookie, by_ticket)))
            await stays_open(bystander)
        assert_error(await http.get("/chat/events", headers=mine.auth), 401)
        assert_error(await http.get("/chat/events", headers=mine.cookie_header), 401)


async def test_logout_by_cookie_ends_the_sessions_stream(jwt_server: Server) -> None:
    mine, _ = await two_sessions(jwt_server, "ssecookie")
    async with client(jwt_server.url) as http:
        async with open_stream(http, "/chat/events", headers=mine.auth) as s:
            assert s.status == 200
            r = await http.post("/auth/logout", headers=mine.cookie_header)
            assert r.status_code == 200, r.text
            await ends_within(s)


async def test_password_change_ends_the_other_sessions_streams(jwt_server: Server) -> None:
    mine, other = await two_sessions(jwt_server, "ssepw")
    async with client(jwt_server.url) as http:
        r = await http.post("/chat/rooms", headers=other.auth, json={"name": "pw room"})
        assert r.status_code == 201, r.text
        room = r.json()["id"]
        t = await ticket(http, other)
        async with (
            open_stream(http, "/chat/events", headers=other.auth) as theirs,
            open_stream(http, f"/chat/room/{room}/events", params={"ticket": t}) as room_stream,
            open_stream(http, "/chat/events", headers=mine.auth) as own,
            websocket(jwt_server, headers=other.auth) as ws,
        ):
            for s in (theirs, room_stream, own):
                assert s.status == 200
            await ws_works(ws)
            r = await change_password(http, mine.auth)
            assert r.status_code == 200, r.text
            code, *_ = await asyncio.gather(
                ws_close_code(ws, ENDS_WITHIN + 0.2), ends_within(theirs), ends_within(room_stream)
            )
            assert code == 4401
            await stays_open(own)
        assert_error(await http.get("/chat/events", headers=other.auth), 401)
        async with websocket(jwt_server, headers=other.auth) as again:
            assert await ws_close_code(again, 5) == 1008


async def test_refresh_token_reuse_ends_the_sessions_streams(jwt_server: Server) -> None:
    mine, _ = await two_sessions(jwt_server, "ssereuse")
    async with client(jwt_server.url) as http:
        async with open_stream(http, "/chat/events", headers=mine.auth) as s:
            assert s.status == 200
            assert (await refresh(http, mine.refresh)).status_code == 200
            assert_error(await refresh(http, mine.refresh), 401, "refresh_token_reused")
            await ends_within(s)
