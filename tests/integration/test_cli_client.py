"""The command-line client against real servers: ``hubbub tail`` in one process piped through
``hubbub send`` in another, exactly once and in order; login keeps credentials 0600 and
refreshed tokens; ``--json`` output parses; errors are one clear line and a non-zero exit."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import PASSWORD, Server, free_port, signup

KEY = "cli-server-key-0123456789abcdef"


@pytest.fixture(scope="module")
def trust_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("cli-trust"),
        auth="trust",
        env={"HUBBUB_SERVER_KEY": KEY, "HUBBUB_RATE_LIMIT_BURST": "1000"},
    )
    server.start()
    yield server
    server.stop()


def env_for(home: Path, server: Server | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    env["XDG_CONFIG_HOME"] = str(home)
    if server is not None:
        env["HUBBUB_URL"] = server.url
    env.update(extra)
    return env


def hubbub(
    env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubbub", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def room() -> str:
    return "c" + uuid.uuid4().hex[:10]


def history(server: Server, room_id: str, who: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.url}/chat/room/{room_id}/history", headers={"User-ID": who})
    assert r.status_code == 200, r.text
    return list(r.json())


def wait_for_stderr(proc: subprocess.Popen[str], needle: str, timeout: float = 20) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen.append(line)
        if needle in line:
            return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no {needle!r} on stderr: {seen}")


def test_version() -> None:
    out = hubbub(env_for(Path("/nonexistent")), "--version")
    from hubbub import __version__

    assert out.returncode == 0 and out.stdout.strip() == f"hubbub {__version__}"


def test_tail_piped_through_send_in_other_processes(trust_api: Server, tmp_path: Path) -> None:
    source, copy = room(), room()
    reader_env = env_for(tmp_path / "reader", trust_api)
    writer_env = env_for(tmp_path / "writer", trust_api)
    assert hubbub(reader_env, "login", "--user-id", "relay").returncode == 0
    assert hubbub(writer_env, "login", "--user-id", "author").returncode == 0
    assert hubbub(writer_env, "send", source, "first, before anyone listens").returncode == 0
    # tail SOURCE --json | send COPY: every line tail prints becomes one message in COPY
    tail = subprocess.Popen(
        [sys.executable, "-m", "hubbub", "tail", source, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=reader_env,
    )
    assert tail.stdout is not None
    pipe = subprocess.Popen(
        [sys.executable, "-m", "hubbub", "send", copy],
        stdin=tail.stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=reader_env,
    )
    tail.stdout.close()
    try:
        wait_for_stderr(tail, "listening")
        lines = [f"line {i}: ünïcode <b>not html</b> \t tab" for i in range(30)]
        sent = hubbub(writer_env, "send", source, "--json", stdin="\n".join(lines) + "\n\n")
        assert sent.returncode == 0, sent.stderr
        stored = [json.loads(x) for x in sent.stdout.splitlines()]
        assert [m["text"] for m in stored] == lines  # one message per line, empty ones skipped
        deadline = time.monotonic() + 30
        while len(history(trust_api, copy, "author")) < 30 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        copied = history(trust_api, copy, "author")
        events = [json.loads(m["text"]) for m in copied]
        assert [e["event"] for e in events] == ["message"] * 30
        assert [e["data"]["text"] for e in events] == lines  # exactly once, in order
        assert [e["data"]["seq"] for e in events] == list(range(2, 32))
        assert all(isinstance(e["id"], str) and e["id"] for e in events)
        assert all(m["user_id"] == "relay" for m in copied)
    finally:
        tail.terminate()
        tail.wait(10)
        pipe.wait(10)
        if tail.stderr:
            tail.stderr.close()
        if pipe.stderr:
            pipe.stderr.close()


def test_tail_prints_messages_for_people(trust_api: Server, tmp_path: Path) -> None:
    r = room()
    env = env_for(tmp_path, trust_api, HUBBUB_USER_ID="watcher", COLUMNS="200")
    tail = subprocess.Popen(
        [sys.executable, "-m", "hubbub", "tail", r],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_for_stderr(tail, "listening")
        out = hubbub(env_for(tmp_path / "w", trust_api, HUBBUB_USER_ID="poster"), "send", r,
                     "[bold]not markup[/bold]")  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert tail.stdout is not None
        line = tail.stdout.readline()
        assert "poster: [bold]not markup[/bold]" in line
    finally:
        tail.terminate()
        tail.wait(10)


def test_login_keeps_credentials_private_and_json_parses(
    jwt_server: Server, tmp_path: Path
) -> None:
    import asyncio

    acct = asyncio.run(signup(jwt_server, "clilogin"))
    env = env_for(tmp_path / "cfg", jwt_server)
    out = hubbub(env, "login", "--username", acct.username, stdin=PASSWORD + "\n")
    assert out.returncode == 0, out.stderr
    creds = tmp_path / "cfg" / "hubbub" / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert stat.S_IMODE(creds.parent.stat().st_mode) == 0o700
    saved = json.loads(creds.read_text())
    entry = saved["servers"][jwt_server.url]
    assert entry["user_id"] == acct.id and entry["refresh_token"]

    created = httpx.post(
        f"{jwt_server.url}/chat/rooms",
        json={"name": "cli room", "visibility": "public"},
        headers=acct.auth,
    ).json()
    assert hubbub(env, "send", created["id"], "from the cli").returncode == 0
    rooms = hubbub(env, "rooms", "--json")
    assert rooms.returncode == 0, rooms.stderr
    listed = [json.loads(x) for x in rooms.stdout.splitlines()]
    assert created["id"] in {x["id"] for x in listed}
    hist = hubbub(env, "history", created["id"], "--json")
    assert [json.loads(x)["text"] for x in hist.stdout.splitlines()] == ["from the cli"]
    plain = hubbub(env, "history", created["id"])
    assert f"{acct.username}: from the cli" in plain.stdout

    # an expired access token is refreshed, and the new pair written back (still 0600)
    entry["access_token"] = "expired"
    creds.write_text(json.dumps(saved))
    assert hubbub(env, "rooms").returncode == 0
    after = json.loads(creds.read_text())["servers"][jwt_server.url]
    assert after["refresh_token"] != entry["refresh_token"]
    assert after["access_token"] != "expired"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert hubbub(env, "rooms").returncode == 0  # and the new pair works next time

    assert hubbub(env, "logout").returncode == 0
    gone = hubbub(env, "rooms")
    assert gone.returncode == 1 and "not logged in" in gone.stderr


def test_errors_are_clear_and_exit_non_zero(jwt_server: Server, tmp_path: Path) -> None:
    env = env_for(tmp_path, jwt_server)
    bad = hubbub(env, "login", "--username", "nobody_here", stdin="wrong password\n")
    assert bad.returncode == 1 and bad.stderr.startswith("error: ")
    assert "Traceback" not in bad.stderr
    nobody = hubbub(env, "send", "r", "x")
    assert nobody.returncode == 1 and "hubbub login" in nobody.stderr
    down = env_for(tmp_path, None, HUBBUB_URL=f"http://127.0.0.1:{free_port()}",
                   HUBBUB_USER_ID="u")  # fmt: skip
    unreachable = hubbub(down, "rooms")
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
    token = env_for(tmp_path, jwt_server, HUBBUB_TOKEN="not-a-token")
    refused = hubbub(token, "history", "general")
    assert refused.returncode == 1 and "401" in refused.stderr
    not_json = hubbub(env, "notify", "u1", "x.y", "{oops", "--server-key", KEY)
    assert not_json.returncode == 2 and "JSON" in not_json.stderr


def test_notify_with_the_server_key(trust_api: Server, tmp_path: Path) -> None:
    env = env_for(tmp_path, trust_api, HUBBUB_SERVER_KEY=KEY)
    out = hubbub(env, "notify", "nina", "order.shipped", '{"order": 42}')
    assert out.returncode == 0, out.stderr
    sent = json.loads(out.stdout)
    assert sent["event"] == "order.shipped" and sent["data"] == {"order": 42} and sent["id"]
    wrong = hubbub(env_for(tmp_path, trust_api), "notify", "nina", "x", "{}", "--server-key", "no")
    assert wrong.returncode == 1 and "403" in wrong.stderr


def test_tail_resumes_across_a_server_restart(tmp_path: Path) -> None:
    import signal

    server = Server(tmp_path / "d", auth="trust", port=free_port()).start()
    r = room()
    env = env_for(tmp_path / "cfg", server, HUBBUB_USER_ID="follower")
    writer = env_for(tmp_path / "cfg2", server, HUBBUB_USER_ID="poster")
    tail = subprocess.Popen(
        [sys.executable, "-m", "hubbub", "tail", r, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_for_stderr(tail, "listening")
        assert hubbub(writer, "send", r, "before").returncode == 0
        server.stop(signal.SIGKILL)
        server.start()
        sent = hubbub(writer, "send", r, stdin="".join(f"after {i}\n" for i in range(10)))
        assert sent.returncode == 0, sent.stderr
        assert tail.stdout is not None
        texts: list[str] = []
        while len(texts) < 11:  # other lines: the poster's member_joined
            event = json.loads(tail.stdout.readline())
            if event["event"] == "message":
                texts.append(event["data"]["text"])
        assert texts == ["before"] + [f"after {i}" for i in range(10)]  # once each, in order
        assert hubbub(writer, "send", r, "last").returncode == 0
        while (event := json.loads(tail.stdout.readline()))["event"] != "message":
            pass
        assert event["data"]["text"] == "last"
    finally:
        tail.terminate()
        tail.wait(10)
        server.stop()
