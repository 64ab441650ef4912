"""API.md "Limits and abuse", tried as an attacker would: password guessing, oversized and
trickled headers, forged cross-site writes, DNS rebinding in trust mode, look-alike usernames,
weak passwords, and a cursor that would tell an outsider about a private room.

Every test runs a real ``hubbub serve`` and talks HTTP (or raw sockets) to it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from hubbub.auth.passwords import hash_password
from hubbub.store.migrate import MIGRATIONS
from tests.support import (
    PASSWORD,
    Server,
    assert_error,
    client,
    open_stream,
    signup,
    user,
)


@pytest.fixture
def jwt_server(tmp_path: Path) -> Iterator[Server]:
    server = Server(
        tmp_path,
        auth="jwt",
        env={"HUBBUB_HEADER_TIMEOUT": "1.5", "HUBBUB_RATE_LIMIT_PER_SECOND": "0"},
    ).start()
    yield server
    server.stop()


@pytest.fixture
def trust_server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path, auth="trust", env={"HUBBUB_RATE_LIMIT_PER_SECOND": "0"}).start()
    yield server
    server.stop()


# sign-in attempts ------------------------------------------------------------------------


async def test_password_guessing_is_stopped_per_username(tmp_path: Path) -> None:
    # The window must outlast ten password hashes on a loaded 2-core machine (each ~0.3-0.8 s),
    # or the first failures leave it before the eleventh try.
    window = 10
    server = Server(tmp_path, auth="jwt", env={"HUBBUB_AUTH_FAILURE_WINDOW": str(window)}).start()
    try:
        async with client(server.url) as http:
            r = await http.post("/auth/register", json={"username": "target", "password": PASSWORD})
            assert r.status_code == 201
            for _ in range(10):
                r = await http.post(
                    "/auth/login", json={"username": "target", "password": "guess-1"}
                )
                assert_error(r, 401, "invalid_credentials")
            # The 11th try, even with the right password (and another spelling of the name).
            started = time.monotonic()
            r = await http.post("/auth/login", json={"username": "TARGET", "password": PASSWORD})
            body = assert_error(r, 429, "too_many_attempts")
            assert 1 <= int(r.headers["retry-after"]) <= window
            assert body["details"]["retry_after"] == int(r.headers["retry-after"])
            assert time.monotonic() - started < 0.5, "a refused attempt costs no password hash"
            # Another user is not locked out by the attack on this one.
            r = await http.post("/auth/register", json={"username": "other", "password": PASSWORD})
            assert r.status_code == 201
            r = await http.post("/auth/login", json={"username": "other", "password": PASSWORD})
            assert r.status_code == 200
            # After the window the right password works again.
            await asyncio.sleep(window + 0.2)
            r = await http.post("/auth/login", json={"username": "target", "password": PASSWORD})
            assert r.status_code == 200, r.text
    finally:
        server.stop()


async def test_concurrent_guesses_are_bounded_too(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        await http.post("/auth/register", json={"username": "victim", "password": PASSWORD})
        answers = await asyncio.gather(
            *[
                http.post("/auth/login", json={"username": "victim", "password": f"guess-{i}"})
                for i in range(40)
            ]
        )
    codes = [r.status_code for r in answers]
    assert codes.count(401) <= 10, codes
    assert codes.count(429) >= 30, codes


async def test_one_address_cannot_spray_many_usernames(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        for i in range(30):
            r = await http.post(
                "/auth/login", json={"username": f"nobody{i}", "password": "x1x2x3x4"}
            )
            assert_error(r, 401, "invalid_credentials")
        r = await http.post("/auth/login", json={"username": "nobody99", "password": "x1x2x3x4"})
        assert_error(r, 429, "too_many_attempts")
        assert "retry-after" in r.headers
        # Registering is an attempt from that address as well.
        r = await http.post("/auth/register", json={"username": "newcomer", "password": PASSWORD})
        assert_error(r, 429, "too_many_attempts")


async def test_probing_taken_usernames_by_register_is_limited(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        await http.post("/auth/register", json={"username": "famous", "password": PASSWORD})
        for _ in range(10):
            r = await http.post("/auth/register", json={"username": "Famous", "password": PASSWORD})
            assert_error(r, 409, "username_taken")
        r = await http.post("/auth/register", json={"username": "famous", "password": PASSWORD})
        assert_error(r, 429, "too_many_attempts")


# request heads ---------------------------------------------------------------------------


def _exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with contextlib.suppress(OSError):
            s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except OSError:
            pass
        return out


def test_oversized_headers_get_431_and_normal_ones_pass(jwt_server: Server) -> None:
    host = f"Host: 127.0.0.1:{jwt_server.port}\r\n".encode()
    big = b"GET /healthz HTTP/1.1\r\n" + host + b"X-Pad: " + b"a" * 70_000 + b"\r\n\r\n"
    answer = _exchange(jwt_server.port, big)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert b'"code":"headers_too_large"' in answer
    fine = b"GET /healthz HTTP/1.1\r\n" + host + b"X-Pad: " + b"a" * 60_000 + b"\r\n"
    answer = _exchange(jwt_server.port, fine + b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]


def test_a_header_streamed_without_end_is_cut_and_costs_no_memory(jwt_server: Server) -> None:
    before = jwt_server.rss_kib()
    with socket.create_connection(("127.0.0.1", jwt_server.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nX-Endless: ")
        sent = 0
        with contextlib.suppress(OSError):
            for _ in range(1024):  # 64 MiB, if the server kept reading
                s.sendall(b"a" * 65536)
                sent += 1
        assert sent < 1024, "the server read a 64 MiB header"
    assert jwt_server.rss_kib() - before < 20_000
    assert httpx.get(jwt_server.url + "/healthz").status_code == 200


def test_clients_trickling_headers_are_disconnected(jwt_server: Server) -> None:
    """HUBBUB_HEADER_TIMEOUT=1.5 here (10 s by default): 25 slow sockets are all closed."""
    sockets = [socket.create_connection(("127.0.0.1", jwt_server.port)) for _ in range(25)]
    started = time.monotonic()
    closed: set[int] = set()
    try:
        while len(closed) < len(sockets) and time.monotonic() - started < 6:
            for i, s in enumerate(sockets):
                if i in closed:
                    continue
                try:
                    s.sendall(
                        b"GET /healthz HTTP/1.1\r\n"
                        if time.monotonic() - started < 0.2
                        else b"X: y\r\n"
                    )
                    s.settimeout(0.01)
                    if s.recv(1) == b"":
                        closed.add(i)
                except TimeoutError:
                    pass
                except OSError:
                    closed.add(i)
            time.sleep(0.2)
        elapsed = time.monotonic() - started
    finally:
        for s in sockets:
            s.close()
    assert len(closed) == 25
    assert 1.0 < elapsed < 5.0
    assert httpx.get(jwt_server.url + "/healthz").status_code == 200


# forged cross-site writes ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def _cookie_client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client: signed in, carrying only the session cookie."""
    async with client(server.url) as http:
        r = await http.post("/auth/register", json={"username": "browser", "password": PASSWORD})
        assert r.status_code == 201
        r = await http.post("/auth/login", json={"username": "browser", "password": PASSWORD})
        assert r.status_code == 200 and "hubbub_session" in http.cookies
        yield http


async def test_cookie_writes_from_another_site_are_refused(jwt_server: Server) -> None:
    evil = {"Origin": "https://evil.example"}
    async with _cookie_client(jwt_server) as http:
        r = await http.post("/chat/rooms", json={"name": "mine", "id": "mine"})
        assert r.status_code == 201
        attempts = [
            http.post("/chat/rooms", json={"name": "forged", "id": "forged"}, headers=evil),
            http.post("/chat/room/mine/leave", headers=evil),
            http.post("/chat/room/mine/join", headers={"Sec-Fetch-Site": "cross-site"}),
            http.post("/chat/messages", json={"room_id": "mine", "message": "x"}, headers=evil),
            http.post(
                "/chat/room/mine/files",
                files={"file": ("a.txt", b"hello", "text/plain")},
                headers=evil,
            ),
            http.post("/auth/logout", headers={"Origin": "null"}),
        ]
        for r in await asyncio.gather(*attempts):
            assert_error(r, 403, "cross_origin")
        # Nothing changed: no forged room, still a member, no message, still signed in.
        rooms = (await http.get("/chat/rooms")).json()["rooms"]
        assert "forged" not in [room["id"] for room in rooms]
        assert (await http.get("/chat/room/mine/history")).json() == []
        assert (await http.get("/auth/me")).status_code == 200
        # The app's own origin, and a same-site request, are fine.
        own = {"Origin": jwt_server.url, "Sec-Fetch-Site": "same-origin"}
        r = await http.post(
            "/chat/messages", json={"room_id": "mine", "message": "hi"}, headers=own
        )
        assert r.status_code == 201
        # A bearer token is not sent by the browser on its own: no forgery possible.
        token = (
            await http.post("/auth/login", json={"username": "browser", "password": PASSWORD})
        ).json()
        r = await http.post(
            "/chat/messages",
            json={"room_id": "mine", "message": "api"},
            headers={**evil, "Authorization": f"Bearer {token['access_token']}"},
        )
        assert r.status_code == 201


async def test_trust_mode_refuses_cross_site_writes_and_foreign_hosts(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        r = await http.post(
            "/chat/messages",
            json={"room_id": "lobby", "message": "forged", "user_id": "alice"},
            headers={"Origin": "http://evil.example"},
        )
        assert_error(r, 403, "cross_origin")
        r = await http.get("/chat/room/lobby/history", headers=user("alice"))
        assert r.status_code == 200 and r.json() == []
        # A script on another site cannot read either (no credentials are needed in trust mode).
        r = await http.get(
            "/chat/rooms", headers={"Origin": "http://evil.example", **user("alice")}
        )
        assert_error(r, 403, "cross_origin")
        # DNS rebinding: evil.example resolved to 127.0.0.1 still sends its own Host.
        for path in ("/chat/rooms", "/chat/room/lobby/history", "/"):
            r = await http.get(path, headers={"Host": "evil.example", **user("alice")})
            assert_error(r, 421, "misdirected_request")
        for host in (f"localhost:{trust_server.port}", f"127.0.0.1:{trust_server.port}"):
            r = await http.get("/chat/rooms", headers={"Host": host, **user("alice")})
            assert r.status_code == 200, (host, r.text)


async def test_jwt_mode_answers_any_host(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        r = await http.get("/healthz", headers={"Host": "chat.example.com"})
        assert r.status_code == 200


# names and passwords ---------------------------------------------------------------------


async def test_usernames_are_one_account_regardless_of_case_and_width(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        r = await http.post("/auth/register", json={"username": "Alice", "password": PASSWORD})
        assert r.status_code == 201
        alice = r.json()["id"]
        for twin in ("alice", "ALICE", "\uff21lice"):  # the last: a fullwidth A
            r = await http.post("/auth/register", json={"username": twin, "password": PASSWORD})
            assert_error(r, 409, "username_taken")
        r = await http.post("/auth/login", json={"username": "aLiCe", "password": PASSWORD})
        assert r.status_code == 200 and r.json()["user"]["id"] == alice
        r = await http.post("/auth/register", json={"username": "\uff22ob", "password": PASSWORD})
        assert r.status_code == 201 and r.json()["username"] == "Bob"
        r = await http.post("/auth/register", json={"username": "José", "password": PASSWORD})
        assert r.status_code == 201


@pytest.mark.parametrize(
    "name",
    ["ev\u202eil", "tab\there", "\u200b\u200b\u200b", "a\u2066b\u2069c", "x\x00y", "no spaces"],
)
async def test_unsafe_usernames_are_refused(jwt_server: Server, name: str) -> None:
    async with client(jwt_server.url) as http:
        r = await http.post("/auth/register", json={"username": name, "password": PASSWORD})
        assert_error(r, 422)


@pytest.mark.parametrize("name", ["evil\u202etxt.exe", "\u200b\u200d", "bell\x07", " \u2060 "])
async def test_unsafe_room_names_are_refused(jwt_server: Server, name: str) -> None:
    account = await signup(jwt_server, "roomer")
    async with client(jwt_server.url, headers=account.auth) as http:
        r = await http.post("/chat/rooms", json={"name": name})
        assert_error(r, 422)
        r = await http.post("/chat/rooms", json={"name": "fine", "id": "fine"})
        assert r.status_code == 201
        r = await http.patch("/chat/room/fine", json={"name": name})
        assert_error(r, 422)
        assert (await http.get("/chat/room/fine")).json()["name"] == "fine"


@pytest.mark.parametrize(
    ("username", "password"),
    [("carol", "short"), ("carol", "password"), ("carol", "Password1"), ("carol1234", "CAROL1234")],
)
async def test_weak_passwords_are_refused(jwt_server: Server, username: str, password: str) -> None:
    async with client(jwt_server.url) as http:
        r = await http.post("/auth/register", json={"username": username, "password": password})
        assert_error(r, 422, "weak_password")
        r = await http.post("/auth/login", json={"username": username, "password": password})
        assert_error(r, 401, "invalid_credentials")  # nothing was created


async def test_password_change_follows_the_same_policy(jwt_server: Server) -> None:
    account = await signup(jwt_server, "changer")
    async with client(jwt_server.url, headers=account.auth) as http:
        for weak in ("1234567", "qwertyuiop", account.username.upper()):
            r = await http.post(
                "/auth/password", json={"old_password": PASSWORD, "new_password": weak}
            )
            assert_error(r, 422, "weak_password")


def test_existing_look_alike_accounts_survive_the_upgrade(tmp_path: Path) -> None:
    """A database from before usernames were case-insensitive, holding ``Dup`` and ``dup``."""
    db = tmp_path / "hubbub.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        hashed = asyncio.run(hash_password(PASSWORD))
        for i, name in enumerate(["Dup", "dup"]):
            conn.execute(
                sa.text(
                    "INSERT INTO users (id, username, password_hash, created_at) "
                    "VALUES (:id, :name, :hash, :at)"
                ),
                {"id": f"u{i}", "name": name, "hash": hashed, "at": f"2026-01-0{i + 1}T00:00:00Z"},
            )
    engine.dispose()
    server = Server(tmp_path, auth="jwt").start()
    try:
        for name, expected in (("Dup", "u0"), ("dup", "u1"), ("DUP", "u0")):
            r = httpx.post(
                server.url + "/auth/login", json={"username": name, "password": PASSWORD}
            )
            assert r.status_code == 200 and r.json()["user"]["id"] == expected, (name, r.text)
        r = httpx.post(
            server.url + "/auth/register", json={"username": "dUP", "password": PASSWORD}
        )
        assert_error(r, 409, "username_taken")
    finally:
        server.stop()


# cursors ---------------------------------------------------------------------------------


async def test_an_outsiders_cursor_says_nothing_about_a_private_room(jwt_server: Server) -> None:
    insider = await signup(jwt_server, "insider")
    outsider = await signup(jwt_server, "outsider")

    async def fresh_cursor() -> str:
        async with client(jwt_server.url, headers=outsider.auth) as http:
            async with open_stream(http, "/chat/events") as stream:
                await stream.wait_for(lambda s: bool(s.named("connected")))
                return str(stream.named("connected")[0].json()["cursor"])

    async with client(jwt_server.url, headers=insider.auth) as http:
        r = await http.post("/chat/rooms", json={"name": "secret", "visibility": "private"})
        room = r.json()["id"]
        before = await fresh_cursor()
        for i in range(5):
            r = await http.post("/chat/messages", json={"room_id": room, "message": f"s{i}"})
            assert r.status_code == 201
        r = await http.patch("/chat/room/" + room, json={"name": "still secret"})
        assert r.status_code == 200
        after = await fresh_cursor()
    assert after == before
    # …and resuming from it replays nothing of that room.
    async with client(jwt_server.url, headers=outsider.auth) as http:
        async with open_stream(http, "/chat/events", headers={"Last-Event-ID": before}) as stream:
            await stream.wait_for(lambda s: bool(s.named("connected")))
            await asyncio.sleep(0.5)
            assert stream.messages() == []
            assert not [e for e in stream.events if room in e.data]
