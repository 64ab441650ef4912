"""``connect``: seconds until ``N`` SSE streams (``rooms`` x N/rooms) are all established.

* trust: ``GET /chat/room/{room}/events?user_id=u{i}``, every stream a new user (the first
  connect of a user creates it, and the first stream into a room creates the room).
* jwt: users registered and signed in, and the rooms created (public), beforehand
  (``POST /auth/register`` + ``/auth/login``, ``POST /chat/rooms``; not timed in the figure
  but reported), stream ``i`` sends ``Authorization: Bearer`` of user
  ``i // per_user`` (the per-user stream cap is 100, so 19,000 streams need 190 users).
* nchan: ``GET /sub/{room}``.

The same client opens all three (``opener.py`` in its own process, at most 256 connects
pending, source addresses 127.0.0.2…), so the figures compare servers, not clients.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import time
from pathlib import Path

from .common import (
    CHAT_SUB,
    HUBBUB_PORT,
    NCHAN_PORT,
    NCHAN_SUB,
    BenchError,
    Json,
    Server,
    box_busy,
    busy_pct,
    hubbub_command,
    log,
    nchan_command,
    num,
    request,
    running,
    tree_rss_mib,
    workdir,
)
from .sends import facts_lines, times

BEGIN, END = "<!-- run.py:connect -->", "<!-- /run.py:connect -->"
OPENER = Path(__file__).with_name("opener.py")
PASSWORD = "bench-password-1"


def register_users(count: int) -> tuple[list[str], float]:
    """Register and sign in ``count`` users; their access tokens and the seconds it took."""

    def one(k: int) -> str:
        name = f"bench{k}"
        status, body = request("POST", "/auth/register", {"username": name, "password": PASSWORD})
        if status not in (201, 409):
            raise BenchError(f"register {name}: {status} {body}")
        status, body = request("POST", "/auth/login", {"username": name, "password": PASSWORD})
        if status != 200:
            raise BenchError(f"login {name}: {status} {body}")
        return str(body["access_token"])

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(one, range(count)))
    return tokens, time.monotonic() - t0


def create_rooms(token: str, rooms: int, prefix: str = "c") -> None:
    """jwt mode has no first use by reading: the rooms are created (public) beforehand."""

    def one(k: int) -> None:
        body = {"name": f"{prefix}{k}", "visibility": "public", "id": f"{prefix}{k}"}
        status, resp = request(
            "POST", "/chat/rooms", body, headers={"Authorization": f"Bearer {token}"}
        )
        if status not in (201, 409):
            raise BenchError(f"create room {prefix}{k}: {status} {resp}")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(rooms)))


def open_streams(server: Server, path: str, conns: int, rooms: int, extra: list[str]) -> Json:
    args = [
        sys.executable,
        str(OPENER),
        *("--port", str(server.port), "--path", path, "--conns", str(conns)),
        *("--rooms", str(rooms), *extra),
    ]
    cpu0, busy0 = server.cpu_s(), box_busy()
    r = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    try:
        out: Json = json.loads(r.stdout)
    except ValueError as exc:
        raise BenchError(f"opener failed: {r.stderr[-1500:]}") from exc
    out["server_cpu_s"] = round(server.cpu_s() - cpu0, 2)
    out["server_rss_mib"] = round(tree_rss_mib(server.pid), 1)
    out["box_busy_pct"] = busy_pct(busy0, box_busy())
    out["command"] = " ".join(args[1:])
    return out


def run(
    harness: Path, *, conns: int, rooms: int, per_user: int, nchan: bool, keep: bool = False
) -> Json:
    out: Json = {"conns": conns, "rooms": rooms, "per_user": per_user, "results": {}}
    with workdir("hubbub-connect-", keep) as wd:
        for mode in ("trust", "jwt"):
            extra = ["--max-streams-per-user", str(per_user)] if per_user > 100 else []
            cmd = hubbub_command(str(wd / f"data-{mode}"), auth=mode, extra=extra)
            with running(Server("hubbub", cmd, HUBBUB_PORT, wd)) as srv:
                opener_args: list[str] = []
                if mode == "jwt":
                    users = -(-conns // per_user)
                    log(f"connect / jwt: registering and signing in {users} users")
                    t0 = time.monotonic()
                    tokens, _ = register_users(users)
                    create_rooms(tokens[0], rooms)
                    took = time.monotonic() - t0
                    token_file = wd / "tokens.txt"
                    token_file.write_text("\n".join(tokens) + "\n")
                    opener_args = ["--tokens", str(token_file), "--per-token", str(per_user)]
                path = CHAT_SUB if mode == "trust" else CHAT_SUB.split("?")[0]
                log(f"connect / hubbub {mode}: {conns} streams over {rooms} rooms")
                r = open_streams(srv, path, conns, rooms, opener_args)
                if mode == "jwt":
                    r["users"], r["register_login_s"] = users, round(took, 1)
                r["server_command"] = " ".join(cmd)
                r["log_errors"] = srv.log_errors()
                log(f"  {r['established']}/{conns} in {r['connect_time_s']} s")
                out["results"][mode] = r
        if nchan:
            with running(Server("nchan", nchan_command(harness), NCHAN_PORT, wd)) as srv:
                log(f"connect / nchan: {conns} streams over {rooms} rooms")
                r = open_streams(srv, NCHAN_SUB, conns, rooms, [])
                log(f"  {r['established']}/{conns} in {r['connect_time_s']} s")
                out["results"]["nchan"] = r
    return out


def render(res: Json, facts: Json) -> str:
    results: Json = res["results"]
    ref = (results.get("nchan") or {}).get("connect_time_s")
    lines = [
        BEGIN,
        "## Connect (`bench/run.py --scenarios connect`)",
        "",
        *facts_lines(facts),
        "",
        f"Time until {num(res['conns'])} SSE streams ({num(res['rooms'])} rooms × "
        f"{num(res['conns'] // max(1, res['rooms']))}) all have their `200` headers, opened by "
        "one client (`bench/scenarios/opener.py`, ≤ 256 connects pending, the same for every "
        "server). trust: each stream a new user (`?user_id=u{i}`), its first connect creates "
        f"it; jwt: {num(res['per_user'])} streams per user with `Authorization: Bearer`, the "
        "users registered and signed in beforehand (that time is given apart, not in the "
        "figure). ×Nchan: connect time relative to Nchan's.",
        "",
        "| server | established | seconds until all established | ×Nchan | per stream p50 / p99 "
        "ms | server CPU s | server RSS MiB | client CPU s | failed | box busy % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = {"trust": "hubbub, trust", "jwt": "hubbub, jwt", "nchan": "nchan"}
    for key, label in names.items():
        r = results.get(key)
        if not r:
            continue
        per = r.get("per_stream_ms") or {}
        fails = f"{r['failed']}" + (f" {r['fail_reasons']}" if r["failed"] else "")
        lines.append(
            f"| {label} | {num(r['established'])} | {num(r['connect_time_s'], 2)} "
            f"| {times(r['connect_time_s'], ref)} "
            f"| {num(per.get('p50'), 1)} / {num(per.get('p99'), 1)} | {num(r['server_cpu_s'])} "
            f"| {num(r['server_rss_mib'])} | {num(r['client_cpu_s'])} | {fails} "
            f"| {num(r['box_busy_pct'])} |"
        )
    jwt = results.get("jwt")
    if jwt:
        lines += [
            "",
            f"jwt set-up: {jwt['users']} users registered and signed in (argon2id, 8 at a "
            f"time), {num(res['rooms'])} public rooms created, in {jwt['register_login_s']} s.",
        ]
    trust = results.get("trust")
    if trust:
        lines.append(f"Server: `{trust['server_command']}` (jwt: `--auth jwt --secret …`).")
    lines.append(END)
    return "\n".join(lines)
