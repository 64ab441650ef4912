"""Trust mode on a database with jwt-mode accounts: a ``User-ID`` that names a registered
account (by id or by username) acts as that account — no phantom user, no 5xx (API.md, "Who
receives what")."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support import Server, client, open_stream

PASSWORD = "correct horse battery"


@dataclass
class Registered:
    id: str
    username: str


@dataclass
class Setup:
    server: Server
    alice: Registered
    bob: Registered
    dave: Registered  # named only by test_a_first_use_of_an_account_name_is_not_a_phantom_user


@pytest.fixture(scope="module")
def accounts_then_trust(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """Two accounts registered in jwt mode, then the same data dir served in trust mode."""
    data_dir = tmp_path_factory.mktemp("trust_accounts")
    jwt_server = Server(data_dir, auth="jwt").start()
    made: list[Registered] = []
    try:
        for prefix in ("alice", "bob", "dave"):
            name = f"{prefix}_{uuid.uuid4().hex[:8]}"
            r = httpx.post(
                jwt_server.url + "/auth/register",
                json={"username": name, "password": PASSWORD},
                timeout=30,
            )
            assert r.status_code == 201, r.text
            made.append(Registered(r.json()["id"], name))
    finally:
        assert jwt_server.stop() == 0
    trust = Server(
        data_dir,
        auth="trust",
        env={"HUBBUB_RATE_LIMIT_BURST": "1000", "HUBBUB_RATE_LIMIT_PER_SECOND": "1000"},
    ).start()
    try:
        yield Setup(trust, *made)
    finally:
        trust.stop()


async def send(
    http: httpx.AsyncClient,
    room: str,
    text: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    **body: Any,
) -> dict[str, Any]:
    r = await http.post(
        "/chat/messages",
        headers=headers,
        params=params,
        json={"room_id": room, "message": text, **body},
    )
    assert r.status_code == 201, r.text
    msg: dict[str, Any] = r.json()["message"]
    return msg


def room_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("by", ["username", "id"])
async def test_a_user_id_naming_an_account_acts_as_it(accounts_then_trust: Setup, by: str) -> None:
    alice = accounts_then_trust.alice
    claimed = alice.username if by == "username" else alice.id
    async with client(accounts_then_trust.server.url) as http:
        msg = await send(http, "r1", "hi", headers={"User-ID": claimed})
        assert (msg["user_id"], msg["username"]) == (alice.id, alice.username)

        # a fresh room, created on first use by the account
        room = room_id("acct")
        msg = await send(http, room, "first", headers={"User-ID": claimed})
        assert (msg["user_id"], msg["username"]) == (alice.id, alice.username)
        r = await http.get(f"/chat/room/{room}/members", headers={"User-ID": claimed})
        assert r.status_code == 200, r.text
        members = r.json()["members"]
        assert [(m["user_id"], m["username"]) for m in members] == [(alice.id, alice.username)]

        r = await http.get("/auth/me", headers={"User-ID": claimed})
        assert r.status_code == 200, r.text
        assert (r.json()["id"], r.json()["username"]) == (alice.id, alice.username)


async def test_every_way_of_naming_the_account_is_the_same_user(
    accounts_then_trust: Setup,
) -> None:
    bob = accounts_then_trust.bob
    room = room_id("ways")
    async with client(accounts_then_trust.server.url) as http:
        sent = [
            await send(http, room, "header", headers={"User-ID": bob.username}),
            await send(http, room, "query", params={"user_id": bob.username}),
            await send(http, room, "body", user_id=bob.username),
            await send(http, room, "by id", headers={"User-ID": bob.id}),
        ]
        assert {(m["user_id"], m["username"]) for m in sent} == {(bob.id, bob.username)}
        async with open_stream(
            http, f"/chat/room/{room}/events", params={"user_id": bob.username}
        ) as s:
            assert s.status == 200
            await send(http, room, "live", headers={"User-ID": bob.id})
            [live] = await s.wait_messages(1)
            assert (live["user_id"], live["username"]) == (bob.id, bob.username)
        r = await http.post(
            f"/chat/room/{room}/typing", headers={"User-ID": bob.username}, json={"is_typing": True}
        )
        assert r.status_code < 500, r.text
        r = await http.get(f"/chat/room/{room}/members", headers={"User-ID": bob.username})
        assert r.status_code == 200, r.text
        assert [m["user_id"] for m in r.json()["members"]] == [bob.id]
        r = await http.get(f"/chat/room/{room}/history", headers={"User-ID": bob.username})
        assert [m["user_id"] for m in r.json()] == [bob.id] * 5


async def test_a_first_use_of_an_account_name_is_not_a_phantom_user(
    accounts_then_trust: Setup,
) -> None:
    """The first request naming the account is not a send (it joins a room): the account."""
    dave = accounts_then_trust.dave
    room = room_id("join")
    async with client(accounts_then_trust.server.url) as http:
        opener = f"opener_{uuid.uuid4().hex[:8]}"
        await send(http, room, "open", headers={"User-ID": opener})
        r = await http.post(f"/chat/room/{room}/join", headers={"User-ID": dave.username})
        assert r.status_code == 200, r.text
        r = await http.get(f"/chat/room/{room}/members", headers={"User-ID": dave.id})
        assert r.status_code == 200, r.text
        members = {(m["user_id"], m["username"]) for m in r.json()["members"]}
        assert members == {(opener, opener), (dave.id, dave.username)}


async def test_plain_trust_users_still_come_into_being(accounts_then_trust: Setup) -> None:
    name = f"carol_{uuid.uuid4().hex[:8]}"
    async with client(accounts_then_trust.server.url) as http:
        msg = await send(http, "r1", "plain", headers={"User-ID": name})
        assert (msg["user_id"], msg["username"]) == (name, name)
        msg = await send(http, "r1", "again", headers={"User-ID": name})
        assert (msg["user_id"], msg["username"]) == (name, name)


async def test_the_accounts_keep_their_passwords(accounts_then_trust: Setup) -> None:
    """Acting as the accounts in trust mode did not replace or damage their rows."""
    async with client(accounts_then_trust.server.url) as http:
        for acct in (accounts_then_trust.alice, accounts_then_trust.bob):
            r = await http.post(
                "/auth/login", json={"username": acct.username, "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
            assert r.json()["user"] == {"id": acct.id, "username": acct.username}
