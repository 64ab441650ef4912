"""The admin commands on the database (``hubbub user list/delete/passwd``, ``room
list/delete``) next to a running server: a new password ends the old sessions, a deleted user
cannot sign in while their messages stay, a deleted room is gone with its messages and files,
and mistakes are a clear error and a non-zero exit."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support import PASSWORD, Account, Server, signup


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("admin"), auth="jwt")
    s.start()
    yield s
    s.stop()


def admin(server: Server, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    return subprocess.run(
        [sys.executable, "-m", "hubbub", *args, "--data-dir", str(server.data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def lines(out: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    assert out.returncode == 0, out.stderr
    return [json.loads(x) for x in out.stdout.splitlines()]


def login(server: Server, name: str, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(f"{server.url}/auth/login", json={"username": name, "password": password})


def wait_status(server: Server, acct: Account, status: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = httpx.get(f"{server.url}/auth/me", headers=acct.auth).status_code
        if got == status or time.monotonic() > deadline:
            assert got == status
            return
        time.sleep(0.2)


def new_room(server: Server, owner: Account, visibility: str = "public") -> str:
    r = httpx.post(
        f"{server.url}/chat/rooms",
        json={"name": "admin " + uuid.uuid4().hex[:6], "visibility": visibility},
        headers=owner.auth,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def say(server: Server, who: Account, room_id: str, text: str) -> None:
    r = httpx.post(
        f"{server.url}/chat/messages", json={"room_id": room_id, "message": text}, headers=who.auth
    )
    assert r.status_code == 201, r.text


def test_user_list_and_passwd(server: Server) -> None:
    ann = asyncio.run(signup(server, "ann"))
    listed = lines(admin(server, "user", "list", "--json"))
    mine = next(u for u in listed if u["id"] == ann.id)
    assert mine["username"] == ann.username and mine["password"] is True
    plain = admin(server, "user", "list")
    assert ann.username in plain.stdout

    weak = admin(server, "user", "passwd", ann.username, stdin="short\n")
    assert weak.returncode == 2 and weak.stderr.startswith("error: ")
    new = "a much better passphrase 42"
    out = admin(server, "user", "passwd", ann.username, stdin=new + "\n")
    assert out.returncode == 0, out.stderr
    wait_status(server, ann, 401)  # the old session ended
    assert login(server, ann.username).status_code == 401
    assert login(server, ann.username, new).status_code == 200


def test_user_delete_keeps_their_messages(server: Server) -> None:
    bob = asyncio.run(signup(server, "bob"))
    cy = asyncio.run(signup(server, "cy"))
    room_id = new_room(server, cy)
    httpx.post(f"{server.url}/chat/room/{room_id}/join", headers=bob.auth)
    say(server, bob, room_id, "bob was here")

    refused = admin(server, "user", "delete", bob.username)  # stdin is not a terminal
    assert refused.returncode == 2 and "--yes" in refused.stderr
    out = admin(server, "user", "delete", bob.username, "--yes")
    assert out.returncode == 0, out.stderr
    assert "deleted user" in out.stdout
    wait_status(server, bob, 401)
    assert login(server, bob.username).status_code == 401
    assert bob.id not in {u["id"] for u in lines(admin(server, "user", "list", "--json"))}
    members = httpx.get(f"{server.url}/chat/room/{room_id}/members", headers=cy.auth).json()
    assert bob.id not in {m["user_id"] for m in members["members"]}
    hist = httpx.get(f"{server.url}/chat/room/{room_id}/history", headers=cy.auth).json()
    assert [(m["text"], m["user_id"]) for m in hist] == [("bob was here", bob.id)]

    again = admin(server, "user", "delete", bob.username, "--yes")
    assert again.returncode == 1 and "no user" in again.stderr


def test_room_list_and_delete(server: Server) -> None:
    dee = asyncio.run(signup(server, "dee"))
    room_id = new_room(server, dee, "private")
    say(server, dee, room_id, "soon gone")
    up = httpx.post(
        f"{server.url}/chat/room/{room_id}/files",
        files={"file": ("a.txt", b"bytes", "text/plain")},
        headers=dee.auth,
    )
    assert up.status_code == 201, up.text
    file_url = up.json()["message"]["file"]["url"]
    listed = {r["id"]: r for r in lines(admin(server, "room", "list", "--json"))}
    assert listed[room_id]["visibility"] == "private"
    assert listed[room_id]["messages"] == 2 and listed[room_id]["members"] == 1

    out = admin(server, "room", "delete", room_id, "--yes")
    assert out.returncode == 0, out.stderr
    assert "1 file(s)" in out.stdout
    assert room_id not in {r["id"] for r in lines(admin(server, "room", "list", "--json"))}
    gone = httpx.get(f"{server.url}/chat/room/{room_id}/history", headers=dee.auth)
    assert gone.status_code == 404
    assert httpx.get(server.url + file_url, headers=dee.auth).status_code == 404
    mine = httpx.get(f"{server.url}/chat/rooms", headers=dee.auth).json()["rooms"]
    assert room_id not in {r["id"] for r in mine}

    missing = admin(server, "room", "delete", room_id, "--yes")
    assert missing.returncode == 1 and "no room" in missing.stderr
