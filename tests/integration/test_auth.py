"""Accounts, tokens, sessions, tickets, impersonation, rate limits and the trust-mode guard,
against a real ``hubbub serve`` process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.support import SECRET, Server, assert_error, client, free_port, open_stream

PASSWORD = "correct horse battery"


def uname(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@dataclass
class Account:
    id: str
    username: str
    token: str
    refresh: str
    cookie: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def register(http: httpx.AsyncClient, prefix: str) -> str:
    name = uname(prefix)
    r = await http.post("/auth/register", json={"username": name, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return name


async def login(url: str, name: str, password: str = PASSWORD) -> Account:
    async with client(url) as c:
        r = await c.post("/auth/login", json={"username": name, "password": password})
        assert r.status_code == 200, r.text
        body = r.json()
        cookie = c.cookies.get("hubbub_session")
    assert cookie
    return Account(body["user"]["id"], name, body["access_token"], body["refresh_token"], cookie)


async def signup(server: Server, prefix: str) -> Account:
    async with client(server.url) as c:
        name = await register(c, prefix)
    return await login(server.url, name)


async def create_room(http: httpx.AsyncClient, owner: Account, visibility: str = "public") -> str:
    r = await http.post(
        "/chat/rooms", headers=owner.auth, json={"name": uname("room"), "visibility": visibility}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def history(http: httpx.AsyncClient, who: Account, room: str) -> list[dict[str, Any]]:
    r = await http.get(f"/chat/room/{room}/history", headers=who.auth, params={"limit": 200})
    assert r.status_code == 200, r.text
    msgs: list[dict[str, Any]] = r.json()
    return msgs


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """A JWT with any header we like, HMAC-SHA256-signed with ``key``."""
    signing_input = f"{b64(header)}.{b64(claims)}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


def set_cookies(r: httpx.Response) -> dict[str, str]:
    out = {}
    for value in r.headers.get_list("set-cookie"):
        name = value.split("=", 1)[0].strip()
        out[name] = value
    return out


# --- register and login -----------------------------------------------------------------------


async def test_register_then_duplicate_is_409(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        name = uname("reg")
        r = await http.post("/auth/register", json={"username": name, "password": PASSWORD})
        assert r.status_code == 201, r.text
        user = r.json()
        assert user["username"] == name
        assert user["id"]
        assert PASSWORD not in r.text
        r = await http.post("/auth/register", json={"username": name, "password": "another pw!"})
        assert_error(r, 409, "username_taken")
        # the original password still works: the duplicate changed nothing
        me = await login(jwt_server.url, name)
        assert me.id == user["id"]
        r = await http.post("/auth/login", json={"username": name, "password": "another pw!"})
        assert_error(r, 401, "invalid_credentials")


async def test_concurrent_registrations_of_one_name_make_one_account(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        name = uname("race")
        results = await asyncio.gather(
            *[
                http.post("/auth/register", json={"username": name, "password": f"{PASSWORD}{i}"})
                for i in range(5)
            ]
        )
        codes = sorted(r.status_code for r in results)
        assert codes == [201, 409, 409, 409, 409], [r.text for r in results]
        for r in results:
            if r.status_code == 409:
                assert_error(r, 409, "username_taken")


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab", "password": PASSWORD},
        {"username": "has space", "password": PASSWORD},
        {"username": "r\u202etl", "password": PASSWORD},
        {"username": "u" * 33, "password": PASSWORD},
        {"username": "", "password": PASSWORD},
        {"username": "NAME", "password": "short"},
        {"username": "NAME", "password": ""},
        {"username": "NAME"},
        {"password": PASSWORD},
        {"username": 12345, "password": PASSWORD},
    ],
    ids=[
        "name-too-short",
        "name-space",
        "name-bidi-override",
        "name-too-long",
        "name-empty",
        "password-short",
        "password-empty",
        "no-password",
        "no-username",
        "name-number",
    ],
)
async def test_register_validation_is_422(jwt_server: Server, body: dict[str, Any]) -> None:
    async with client(jwt_server.url) as http:
        name = uname("val")
        body = {k: (name if v == "NAME" else v) for k, v in body.items()}
        r = await http.post("/auth/register", json=body)
        assert_error(r, 422)
        # nothing was created: the name is still free
        if body.get("username") == name:
            r = await http.post("/auth/register", json={"username": name, "password": PASSWORD})
            assert r.status_code == 201, r.text


async def test_login_failures_look_the_same(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        name = await register(http, "login")
        wrong = await http.post("/auth/login", json={"username": name, "password": "nope nope"})
        unknown = await http.post(
            "/auth/login", json={"username": uname("ghost"), "password": PASSWORD}
        )
        e1 = assert_error(wrong, 401, "invalid_credentials")
        e2 = assert_error(unknown, 401, "invalid_credentials")
        assert e1["message"] == e2["message"]
        for r in (wrong, unknown):
            assert "hubbub_session" not in set_cookies(r)
            assert "access_token" not in r.text


async def test_login_returns_tokens_and_a_safe_session_cookie(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        name = await register(http, "tok")
        r = await http.post("/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "bearer"
        assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
        assert body["access_token"] and body["refresh_token"]
        assert body["access_token"] != body["refresh_token"]
        # HS256, sub = the user id, exp required
        claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"])
        me = await http.get("/auth/me", headers=bearer(body["access_token"]))
        assert me.status_code == 200
        assert me.json()["username"] == name
        assert claims["sub"] == me.json()["id"]
        assert claims["exp"] > time.time()

        cookie = set_cookies(r).get("hubbub_session")
        assert cookie is not None, r.headers.get_list("set-cookie")
        attrs = [a.strip().lower() for a in cookie.split(";")]
        assert "httponly" in attrs
        assert "samesite=lax" in attrs
        assert "secure" not in attrs  # plain HTTP here; Secure only over HTTPS


# --- missing and bad credentials --------------------------------------------------------------


async def test_requests_without_credentials_are_401(jwt_server: Server) -> None:
    owner = await signup(jwt_server, "anon")
    async with client(jwt_server.url) as owned:
        room = await create_room(owned, owner)
        assert (
            await owned.post(
                "/chat/messages", headers=owner.auth, json={"room_id": room, "message": "hi"}
            )
        ).status_code == 201
    async with client(jwt_server.url) as http:
        calls = [
            http.get("/chat/rooms"),
            http.post("/chat/rooms", json={"name": "x"}),
            http.get(f"/chat/room/{room}"),
            http.get(f"/chat/room/{room}/history"),
            http.get(f"/chat/room/{room}/events", timeout=5),
            http.post("/chat/messages", json={"room_id": room, "message": "anonymous"}),
            http.post(f"/chat/room/{room}/join"),
            http.get("/auth/me"),
            http.post("/auth/ticket"),
        ]
        for r in await asyncio.gather(*calls):
            assert_error(r, 401, "not_authenticated")
        for headers in (
            {"Authorization": "Basic dXNlcjpwYXNz"},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer not-a-jwt"},
            {"Authorization": owner.token},
        ):
            r = await http.post(
                "/chat/messages", headers=headers, json={"room_id": room, "message": "sneaky"}
            )
            assert_error(r, 401)
        assert [m["text"] for m in await history(http, owner, room)] == ["hi"]


async def test_operational_routes_need_no_token(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            r = await http.get(path)
            assert r.status_code == 200, (path, r.status_code)


_SHARED: dict[str, tuple[Account, str]] = {}


async def target(server: Server) -> tuple[Account, str]:
    """One account and one empty room per server that forged tokens try to act on."""
    if server.url not in _SHARED:
        owner = await signup(server, "target")
        async with client(server.url) as http:
            _SHARED[server.url] = (owner, await create_room(http, owner))
    return _SHARED[server.url]


def _forgeries(user_id: str) -> dict[str, str]:
    now = int(time.time())
    good = {"sub": user_id, "exp": now + 600, "iat": now}
    return {
        "other-secret": jwt.encode(
            good, "some-other-secret-0123456789-abcdefgh", algorithm="HS256"
        ),
        "alg-none": jwt.encode(good, None, algorithm="none"),
        "alg-none-with-sig": hand_signed({"alg": "none", "typ": "JWT"}, good, SECRET.encode()),
        "HS512": jwt.encode(good, SECRET + SECRET, algorithm="HS512"),
        "HS384": jwt.encode(good, SECRET + SECRET, algorithm="HS384"),
        "RS256-header-hmac-sig": hand_signed({"alg": "RS256", "typ": "JWT"}, good, SECRET.encode()),
        "no-exp": jwt.encode({"sub": user_id, "iat": now}, SECRET, algorithm="HS256"),
        "no-sub": jwt.encode({"exp": now + 600}, SECRET, algorithm="HS256"),
        "unknown-user": jwt.encode(
            {"sub": "no-such-user", "exp": now + 600}, SECRET, algorithm="HS256"
        ),
        "tampered-sub": _tamper(jwt.encode(good, SECRET, algorithm="HS256")),
    }


def _tamper(token: str) -> str:
    head, _, rest = token.partition(".")
    _, _, sig = rest.partition(".")
    return f"{head}.{b64({'sub': 'admin', 'exp': int(time.time()) + 600})}.{sig}"


@pytest.mark.parametrize(
    "kind",
    [
        "other-secret",
        "alg-none",
        "alg-none-with-sig",
        "HS512",
        "HS384",
        "RS256-header-hmac-sig",
        "no-exp",
        "no-sub",
        "unknown-user",
        "tampered-sub",
    ],
)
async def test_forged_tokens_are_401(jwt_server: Server, kind: str) -> None:
    owner, room = await target(jwt_server)
    token = _forgeries(owner.id)[kind]
    async with client(jwt_server.url) as http:
        for r in (
            await http.get("/chat/rooms", headers=bearer(token)),
            await http.get(f"/chat/room/{room}/history", headers=bearer(token)),
            await http.get(f"/chat/room/{room}/events", headers=bearer(token), timeout=5),
            await http.post(
                "/chat/messages",
                headers=bearer(token),
                json={"room_id": room, "message": "forged"},
            ),
        ):
            err = assert_error(r, 401)
            assert err["code"] in {"invalid_token", "token_expired"}, err
        assert await history(http, owner, room) == []


async def test_a_correctly_signed_token_is_accepted(jwt_server: Server) -> None:
    """The control for the forgeries: HS256 with the server's secret, sub and exp → accepted."""
    owner, _ = await target(jwt_server)
    token = jwt.encode({"sub": owner.id, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
    async with client(jwt_server.url) as http:
        r = await http.get("/auth/me", headers=bearer(token))
        assert r.status_code == 200, r.text
        assert r.json()["id"] == owner.id


async def test_expired_token_is_401_token_expired(jwt_server: Server) -> None:
    owner, room = await target(jwt_server)
    now = int(time.time())
    expired = jwt.encode(
        {"sub": owner.id, "iat": now - 3600, "exp": now - 60}, SECRET, algorithm="HS256"
    )
    async with client(jwt_server.url) as http:
        for r in (
            await http.get("/auth/me", headers=bearer(expired)),
            await http.get(f"/chat/room/{room}/events", headers=bearer(expired), timeout=5),
            await http.post(
                "/chat/messages",
                headers=bearer(expired),
                json={"room_id": room, "message": "too late"},
            ),
        ):
            assert_error(r, 401, "token_expired")
        assert await history(http, owner, room) == []


# --- impersonation ----------------------------------------------------------------------------


async def test_naming_someone_else_is_403_and_stores_nothing(jwt_server: Server) -> None:
    alice, bob = await asyncio.gather(signup(jwt_server, "alice"), signup(jwt_server, "bob"))
    async with client(jwt_server.url) as http:
        room = await create_room(http, alice)
        assert (await http.post(f"/chat/room/{room}/join", headers=bob.auth)).status_code == 200

        # seed EventSource URL with someone else's user_id
        for victim in (bob.id, bob.username):
            async with open_stream(
                http, f"/chat/room/{room}/events", headers=alice.auth, params={"user_id": victim}
            ) as s:
                assert s.status == 403
        r = await http.get(
            f"/chat/room/{room}/events", headers=alice.auth, params={"user_id": bob.id}
        )
        assert_error(r, 403, "user_mismatch")

        # React hook: user_id in the POST body
        r = await http.post(
            "/chat/messages",
            headers=alice.auth,
            json={"room_id": room, "message": "I am bob", "user_id": bob.id},
        )
        assert_error(r, 403, "user_mismatch")
        # User-ID header
        r = await http.post(
            "/chat/messages",
            headers={**alice.auth, "User-ID": bob.id},
            json={"room_id": room, "message": "I am bob too"},
        )
        assert_error(r, 403, "user_mismatch")
        r = await http.get(f"/chat/room/{room}/history", headers={**alice.auth, "User-ID": bob.id})
        assert_error(r, 403, "user_mismatch")
        # user_id query parameter on the send route
        r = await http.post(
            "/chat/messages",
            headers=alice.auth,
            params={"user_id": bob.id},
            json={"room_id": room, "message": "query bob"},
        )
        assert_error(r, 403, "user_mismatch")
        assert await history(http, alice, room) == []

        # naming yourself (as the seeds do) is fine
        r = await http.post(
            "/chat/messages",
            headers=alice.auth,
            json={"room_id": room, "message": "me", "user_id": alice.id},
        )
        assert r.status_code == 201, r.text
        assert r.json()["message"]["user_id"] == alice.id
        async with open_stream(
            http, f"/chat/room/{room}/events", headers=alice.auth, params={"user_id": alice.id}
        ) as s:
            assert s.status == 200
            assert s.events[0].json()["user_id"] == alice.id
        assert [m["user_id"] for m in await history(http, alice, room)] == [alice.id]


# --- refresh, logout --------------------------------------------------------------------------


async def refresh(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates_and_reuse_ends_the_session(jwt_server: Server) -> None:
    me = await signup(jwt_server, "rot")
    async with client(jwt_server.url) as http:
        r = await refresh(http, me.refresh)
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["refresh_token"] != me.refresh
        assert first["token_type"] == "bearer"
        assert (
            await http.get("/auth/me", headers=bearer(first["access_token"]))
        ).status_code == 200

        r = await refresh(http, first["refresh_token"])
        assert r.status_code == 200, r.text
        newest = r.json()
        assert (
            await http.get("/auth/me", headers=bearer(newest["access_token"]))
        ).status_code == 200

        # a stolen, already-used refresh token comes back
        assert_error(await refresh(http, me.refresh), 401, "refresh_token_reused")
        # ...which ends the whole session: the newest refresh token and access token die too
        assert_error(await refresh(http, newest["refresh_token"]), 401)
        assert_error(await http.get("/auth/me", headers=bearer(newest["access_token"])), 401)
        assert_error(await http.get("/auth/me", headers=bearer(me.token)), 401)
        # other sessions of the same user are not affected
        again = await login(jwt_server.url, me.username)
        assert (await http.get("/auth/me", headers=again.auth)).status_code == 200


async def test_refresh_with_garbage_is_401(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        assert_error(await refresh(http, "not-a-refresh-token"), 401)
        assert_error(await http.post("/auth/refresh", json={}), 401)


async def test_logout_revokes_refresh_token_and_cookie(jwt_server: Server) -> None:
    me = await signup(jwt_server, "bye")
    async with client(jwt_server.url) as http:
        cookie = {"Cookie": f"hubbub_session={me.cookie}"}
        assert (await http.get("/auth/me", headers=cookie)).status_code == 200
        r = await http.post("/auth/logout", json={"refresh_token": me.refresh})
        assert r.status_code == 200, r.text
        cleared = set_cookies(r).get("hubbub_session", "")
        assert "max-age=0" in cleared.lower(), r.headers.get_list("set-cookie")

    async with client(jwt_server.url) as http:
        assert_error(await refresh(http, me.refresh), 401)
        assert_error(await http.get("/auth/me", headers=cookie), 401)
        assert_error(await http.get("/chat/rooms", headers=cookie), 401)
        assert_error(await http.get("/auth/me", headers=me.auth), 401)


async def test_logout_with_the_session_cookie_only(jwt_server: Server) -> None:
    async with client(jwt_server.url) as http:
        name = await register(http, "ckout")
        r = await http.post("/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200
        refresh_token = r.json()["refresh_token"]
        session = http.cookies.get("hubbub_session")
        assert (await http.get("/auth/me")).status_code == 200
        r = await http.post("/auth/logout")
        assert r.status_code == 200, r.text
        assert_error(await http.get("/auth/me"), 401)
    async with client(jwt_server.url) as fresh:
        assert_error(
            await fresh.get("/auth/me", headers={"Cookie": f"hubbub_session={session}"}), 401
        )
        assert_error(await refresh(fresh, refresh_token), 401)


# --- tickets and cookies ----------------------------------------------------------------------


async def test_ticket_opens_one_stream_once(jwt_server: Server) -> None:
    me = await signup(jwt_server, "tix")
    async with client(jwt_server.url) as http:
        room = await create_room(http, me)
        r = await http.post("/auth/ticket", headers=me.auth)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"ticket", "expires_in"}
        assert body["expires_in"] == 30
        ticket = body["ticket"]
        assert ticket and ticket not in (me.token, me.refresh)

    async with client(jwt_server.url) as browser:  # EventSource: no headers, no cookies
        url = f"/chat/room/{room}/events"
        async with open_stream(browser, url, params={"ticket": ticket}) as s:
            assert s.status == 200
            assert s.events[0].json()["user_id"] == me.id
            async with client(jwt_server.url) as http:
                r = await http.post(
                    "/chat/messages", headers=me.auth, json={"room_id": room, "message": "hey"}
                )
                assert r.status_code == 201
            [msg] = await s.wait_messages(1)
            assert msg["text"] == "hey"
        async with open_stream(browser, url, params={"ticket": ticket}) as s2:
            assert s2.status == 401
        r = await browser.get(url, params={"ticket": ticket})
        assert_error(r, 401, "invalid_ticket")
        r = await browser.get(url, params={"ticket": "made-up-ticket"})
        assert_error(r, 401, "invalid_ticket")


async def test_session_cookie_alone_works_for_stream_and_send(jwt_server: Server) -> None:
    """The seed React hook sends no Authorization header: the login cookie must be enough."""
    async with client(jwt_server.url) as browser:
        name = await register(browser, "cookie")
        r = await browser.post("/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200
        user_id = r.json()["user"]["id"]
        assert browser.cookies.get("hubbub_session")

        r = await browser.post("/chat/rooms", json={"name": "cookie room"})
        assert r.status_code == 201, r.text
        room = r.json()["id"]
        async with open_stream(browser, f"/chat/room/{room}/events") as s:
            assert s.status == 200
            assert s.events[0].json()["user_id"] == user_id
            r = await browser.post(
                "/chat/messages", json={"room_id": room, "user_id": user_id, "message": "hook"}
            )
            assert r.status_code == 201, r.text
            assert r.json()["message"]["user_id"] == user_id
            [msg] = await s.wait_messages(1)
            assert msg["text"] == "hook"
        # the refresh cookie works too (no body)
        r = await browser.post("/auth/refresh")
        assert r.status_code == 200, r.text
        hist = await browser.get(f"/chat/room/{room}/history")
        assert [m["text"] for m in hist.json()] == ["hook"]


# --- rate limit -------------------------------------------------------------------------------


async def test_rate_limit_is_429_with_retry_after(tmp_path: Path) -> None:
    server = Server(
        tmp_path,
        auth="jwt",
        env={"HUBBUB_RATE_LIMIT_BURST": "5", "HUBBUB_RATE_LIMIT_PER_SECOND": "0.5"},
    ).start()
    try:
        me, other = await asyncio.gather(signup(server, "fast"), signup(server, "calm"))
        async with client(server.url) as http:
            room = await create_room(http, me)
            joined = await http.post(f"/chat/room/{room}/join", headers=other.auth)
            assert joined.status_code == 200, joined.text
            codes = []
            for i in range(6):
                r = await http.post(
                    "/chat/messages", headers=me.auth, json={"room_id": room, "message": f"m{i}"}
                )
                codes.append(r.status_code)
            assert codes == [201] * 5 + [429], codes
            assert_error(r, 429, "rate_limited")
            retry_after = r.headers.get("retry-after")
            assert retry_after is not None and retry_after.isdigit(), r.headers
            assert int(retry_after) >= 1
            assert [m["text"] for m in await history(http, me, room)] == [f"m{i}" for i in range(5)]
            # the limit is per user: someone else can still talk
            r = await http.post(
                "/chat/messages", headers=other.auth, json={"room_id": room, "message": "calm"}
            )
            assert r.status_code == 201, r.text
    finally:
        server.stop()


# --- trust mode guard -------------------------------------------------------------------------


def _serve_cmd(data_dir: Path, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "hubbub",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *extra,
    ]


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--auth", "trust", "--host", "0.0.0.0"], {}),
        ([], {"HUBBUB_AUTH": "trust", "HUBBUB_HOST": "0.0.0.0"}),
    ],
    ids=["flags", "env"],
)
async def test_trust_mode_refuses_a_public_address(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *_serve_cmd(tmp_path, port, *args),
        env={**os.environ, "HUBBUB_SECRET": SECRET, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail("hubbub serve --auth trust --host 0.0.0.0 kept running")
    assert proc.returncode != 0
    text = (out + err).decode(errors="replace").lower()
    assert "trust" in text, text
    async with client(f"http://127.0.0.1:{port}") as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("/healthz")


async def test_trust_mode_on_a_public_address_runs_only_when_forced(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "forced.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *_serve_cmd(tmp_path, port, "--auth", "trust", "--host", "0.0.0.0", "--force-trust"),
            env={**os.environ, "HUBBUB_SECRET": SECRET, "HUBBUB_LOG_LEVEL": "info"},
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        async with client(f"http://127.0.0.1:{port}", timeout=1.0) as http:
            for _ in range(200):
                assert proc.returncode is None, log_path.read_text()
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                pytest.fail(f"forced trust server did not start:\n{log_path.read_text()}")
            r = await http.post(
                "/chat/messages",
                headers={"User-ID": "anyone"},
                json={"room_id": "open", "message": "trusted"},
            )
            assert r.status_code == 201, r.text
        # ...and says so loudly in its log
        log_text = log_path.read_text().lower()
        assert "warning" in log_text and "trust" in log_text, log_text
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
