"""Logs an operator can read and ship: ``--log-format json|text`` covers Hubbub's lines and
uvicorn's alike, each request has an id (the client's sane ``X-Request-ID`` or a new one) in
its response and in every line logged while it is handled; and per-route HTTP metrics with
route templates, never raw paths (``logs.py``, ``http_metrics.py``)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import REDIS_URL, Server, client, open_stream, redis_available, say, user

HEX_ID = re.compile(r"[0-9a-f]{16}")
TEXT_LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (TRACE|DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"[\w.]+( \[[^\]\s]+\])? \S"
)
# What a client may put in X-Request-ID that must never reach a response or a log as such.
HOSTILE = [
    "x" * 5000,  # huge
    'abc"}{"level":"CRITICAL","message":"forged',  # quotes: a forged JSON record
    "a b\tc",  # spaces
]
# bytes beyond ASCII (the parser itself refuses control bytes with 400; httpx sends neither)
RAW_HOSTILE = b'evil\xff\xfe"{"injected":1}'


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """JSON lines; debug level turns uvicorn's access log on (one line per request)."""
    srv = Server(
        tmp_path_factory.mktemp("jsonlogs"),
        auth="trust",
        args=["--log-format", "json", "--log-level", "debug"],
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def text_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The default format, at info level: the send fast lane is on."""
    srv = Server(
        tmp_path_factory.mktemp("textlogs"),
        auth="trust",
        env={"HUBBUB_LOG_FORMAT": "text", "HUBBUB_RATE_LIMIT_BURST": "1000"},
    )
    srv.start()
    yield srv
    srv.stop()


def json_lines(server: Server) -> list[dict[str, Any]]:
    """Every line the server wrote (stdout and stderr), each parsed as one JSON object."""
    records = []
    for line in server.log().splitlines():
        record = json.loads(line)  # a line that is not JSON fails the test here
        assert isinstance(record, dict), line
        assert {"ts", "level", "logger", "message"} <= set(record), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"]), line
        records.append(record)
    return records


async def raw_request(server: Server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
        return int(lines[0].split()[1]), headers, body
    finally:
        writer.close()


async def wait_for_line(server: Server, predicate: Any) -> dict[str, Any]:
    for _ in range(100):
        found = [r for r in json_lines(server) if predicate(r)]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no such log line in:\n{server.log()}")


async def test_json_lines_carry_the_request_id(json_server: Server) -> None:
    async with client(json_server.url) as http:
        r = await http.get("/healthz", headers={"X-Request-ID": "req-42:a/b=c@d"})
        assert r.status_code == 200
        assert r.headers["x-request-id"] == "req-42:a/b=c@d"
        # a request that Hubbub itself logs about: a refused sign-in
        r = await http.post(
            "/auth/login",
            json={"username": "nobody_here", "password": "wrong-password-123"},
            headers={"X-Request-ID": "signin-0001"},
        )
        assert r.status_code == 401, r.text
        assert r.headers["x-request-id"] == "signin-0001"
        r = await http.get("/rooms", headers=user("alice"))
        generated = r.headers["x-request-id"]
        assert HEX_ID.fullmatch(generated), generated

    refused = await wait_for_line(
        json_server, lambda rec: rec["logger"] == "hubbub.auth" and "nobody_here" in rec["message"]
    )
    assert refused["request_id"] == "signin-0001"
    assert refused["level"] == "WARNING"
    records = json_lines(json_server)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        if "request_id" in rec:
            by_id.setdefault(rec["request_id"], []).append(rec)
    # uvicorn's access line of each request, as JSON, with its id and fields
    access = {rec["path"]: rec for rec in records if rec["logger"] == "uvicorn.access"}
    assert access["/healthz"]["request_id"] == "req-42:a/b=c@d"
    assert access["/healthz"]["status"] == 200 and access["/healthz"]["method"] == "GET"
    assert access["/auth/login"]["request_id"] == "signin-0001"
    assert access["/rooms"]["request_id"] == generated
    assert {rec["logger"] for rec in by_id["signin-0001"]} == {"hubbub.auth", "uvicorn.access"}
    # uvicorn's own start-up lines are JSON records too (parsed above), without request ids
    running = [rec for rec in records if "Application startup complete" in rec["message"]]
    assert running and running[0]["logger"] == "uvicorn.error"
    assert "request_id" not in running[0] and "color_message" not in running[0]
    assert any(rec["logger"] == "hubbub" for rec in records)


async def test_hostile_request_ids_are_replaced_never_echoed(json_server: Server) -> None:
    answered = []
    async with client(json_server.url) as http:
        for value in HOSTILE:
            r = await http.get("/healthz", headers={"X-Request-ID": value})
            assert r.status_code == 200
            answered.append(r.headers["x-request-id"])
    status, headers, _ = await raw_request(
        json_server,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: " + RAW_HOSTILE + b"\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert status == 200
    answered.append(headers["x-request-id"])
    for rid in answered:
        assert HEX_ID.fullmatch(rid), rid  # a fresh id in place of the client's
    assert len(set(answered)) == len(answered)
    for rid in answered:
        await wait_for_line(json_server, lambda rec, rid=rid: rec.get("request_id") == rid)
    log = json_server.log()
    assert "forged" not in log and "injected" not in log and "x" * 200 not in log
    assert all(rec["level"] != "CRITICAL" for rec in json_lines(json_server))


async def test_worker_processes_log_json_too(tmp_path: Path) -> None:
    """``--workers 2``: each worker process (spawned by uvicorn) configures the same format."""
    redis_available()
    srv = Server(
        tmp_path / "workers",
        auth="trust",
        args=["--log-format", "json", "--workers", "2", "--broker", REDIS_URL],
        env={"HUBBUB_BROKER_PREFIX": f"test-logs-{uuid.uuid4().hex[:8]}:"},
    ).start(timeout=60)
    try:
        async with client(srv.url) as http:
            for i in range(6):
                r = await http.post(
                    "/auth/login",
                    json={"username": "no_such_worker_user", "password": "wrong-password-123"},
                    headers={"X-Request-ID": f"worker-req-{i}"},
                )
                assert r.status_code == 401 and r.headers["x-request-id"] == f"worker-req-{i}"
        for i in range(6):
            await wait_for_line(srv, lambda rec, i=i: rec.get("request_id") == f"worker-req-{i}")
    finally:
        srv.stop()
    records = json_lines(srv)  # the parent's lines and both workers', every one JSON
    started = {rec["message"] for rec in records if rec["message"].startswith("Started server")}
    assert len(started) >= 2, started  # one per worker process


async def test_text_format_is_shared_by_hubbub_and_uvicorn(text_server: Server) -> None:
    async with client(text_server.url) as http:
        r = await http.post(
            "/auth/login",
            json={"username": "ghost_user", "password": "wrong-password-123"},
            headers={"X-Request-ID": "text-signin-7"},
        )
        assert r.status_code == 401
    for _ in range(100):
        if "ghost_user" in text_server.log():
            break
        await asyncio.sleep(0.05)
    lines = text_server.log().splitlines()
    for line in lines:
        assert TEXT_LINE.match(line), line
    loggers = {line.split(" ")[2] for line in lines}
    assert {"uvicorn.error", "hubbub"} <= loggers, lines
    refused = [line for line in lines if "ghost_user" in line]
    assert refused and " WARNING hubbub.auth [text-signin-7] sign-in refused" in refused[0]


async def test_send_fast_lane_returns_the_request_id(text_server: Server) -> None:
    body = b'{"room_id":"lane","message":"hi"}'
    request = (
        b"POST /chat/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-ID: alice\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
    )
    status, headers, _ = await raw_request(
        text_server, request % (len(body), b"X-Request-ID: lane-req-1\r\n", body)
    )
    assert status == 201 and headers["x-request-id"] == "lane-req-1"
    status, headers, _ = await raw_request(text_server, request % (len(body), b"", body))
    assert status == 201 and HEX_ID.fullmatch(headers["x-request-id"])
    status, headers, _ = await raw_request(
        text_server, request % (len(body), b"X-Request-ID: " + RAW_HOSTILE + b"\r\n", body)
    )
    assert status == 201 and HEX_ID.fullmatch(headers["x-request-id"])
    # the fast lane answers without uvicorn's cycle: the id is there on its errors too
    status, headers, _ = await raw_request(text_server, request % (2, b"", b"{}"))
    assert status == 422 and HEX_ID.fullmatch(headers["x-request-id"])


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line[len(name) + 1 :].rpartition("} ")
            pairs = tuple(
                sorted(tuple(p.split("=", 1)) for p in re.findall(r'\w+="[^"]*"', labels))
            )
            out[tuple((k, v.strip('"')) for k, v in pairs)] = float(value)
    return out


def count(series: dict[tuple[tuple[str, str], ...], float], **labels: str) -> float:
    want = set(labels.items())
    return sum(v for k, v in series.items() if want <= set(k))


async def test_per_route_metrics_use_templates(text_server: Server) -> None:
    rooms = [f"metrics-room-{i}" for i in range(3)]
    async with client(text_server.url) as http:
        for room in rooms:
            await say(http, "alice", room, "hello")  # the fast lane
            r = await http.get(f"/chat/room/{room}/history", headers=user("alice"))
            assert r.status_code == 200
        for i in range(2):
            r = await http.get(f"/no/such/route/{i}")
            assert r.status_code == 404
        r = await http.get(
            f"/chat/room/{rooms[0]}/poll", params={"timeout": 0}, headers=user("bob")
        )
        assert r.status_code == 200
        async with open_stream(
            http, f"/chat/room/{rooms[0]}/events", headers=user("alice")
        ) as stream:
            assert stream.status == 200
            assert HEX_ID.fullmatch(stream.headers["x-request-id"])  # on the stream's head
            # counted while open: a stream is counted when its head goes out
            text = (await http.get("/metrics")).text
    total = samples(text, "hubbub_http_requests_total")
    hist = samples(text, "hubbub_http_request_duration_seconds_count")
    assert count(total, method="POST", route="/chat/messages", status="201") >= 3
    assert count(total, method="GET", route="/chat/room/{room_id}/history", status="200") == 3
    assert count(total, route="unmatched", status="404") == 2
    assert count(total, route="/chat/room/{room_id}/events", status="200") == 1
    assert count(total, route="/chat/room/{room_id}/poll", status="200") == 1
    assert count(hist, route="/chat/room/{room_id}/history") == 3
    assert count(hist, route="/chat/messages") >= 3
    assert count(hist, route="/chat/room/{room_id}/events") == 1  # its time to first byte
    assert count(hist, route="/chat/room/{room_id}/poll") == 0  # a poll waits by design
    http_lines = [line for line in text.splitlines() if line.startswith("hubbub_http_")]
    assert http_lines
    for line in http_lines:  # no raw path made it into a label
        assert "metrics-room" not in line and "/no/such" not in line, line
