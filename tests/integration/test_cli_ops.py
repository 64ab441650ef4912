"""The command line, operations endpoints, and that closed streams leave nothing behind."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import SECRET, Server, client, open_stream


def hubbub(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubbub", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert found is not None, f"{name} not in metrics"
    return float(found.group(1))


async def test_user_create_then_login(data_dir: Path) -> None:
    done = hubbub("migrate", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    made = hubbub("user", "create", "carol", "--data-dir", str(data_dir), stdin="s3cret-pass\n")
    assert made.returncode == 0, made.stderr
    assert "created user carol" in made.stdout
    again = hubbub(
        "user", "create", "carol", "--password", "whatever1", "--data-dir", str(data_dir)
    )
    assert again.returncode != 0
    assert "taken" in again.stderr
    server = Server(data_dir, auth="jwt").start()
    try:
        r = httpx.post(
            server.url + "/auth/login", json={"username": "carol", "password": "s3cret-pass"}
        )
        assert r.status_code == 200
        assert r.json()["user"]["username"] == "carol"
    finally:
        server.stop()


async def test_generated_secret_is_kept_across_restarts(data_dir: Path) -> None:
    env = {"HUBBUB_SECRET": ""}
    server = Server(data_dir, auth="jwt", env=env).start()
    try:
        assert (
            httpx.post(
                server.url + "/auth/register", json={"username": "dave", "password": "password-1"}
            ).status_code
            == 201
        )
        token = httpx.post(
            server.url + "/auth/login", json={"username": "dave", "password": "password-1"}
        ).json()["access_token"]
    finally:
        server.stop()
    secret_file = data_dir / "secret.key"
    assert secret_file.exists()
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
    server = Server(data_dir, auth="jwt", env=env, port=server.port).start()
    try:
        me = httpx.get(server.url + "/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["username"] == "dave"
    finally:
        server.stop()
    assert SECRET not in secret_file.read_text()


async def test_health_ready_openapi_and_metrics(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).json() == {"status": "ready"}
        spec = (await http.get("/openapi.json")).json()
        assert "post" in spec["paths"]["/chat/messages"]
        assert "get" in spec["paths"]["/chat/room/{room_id}/events"]
        assert "/chat/room/{room_id}/history" in spec["paths"]
        assert "Last-Event-ID" in spec["paths"]["/chat/room/{room_id}/events"]["get"]["description"]
        assert (await http.get("/docs")).status_code == 200
        async with open_stream(http, "/chat/room/metrics/events", params={"user_id": "m"}) as s:
            r = await http.post(
                "/chat/messages",
                headers={"User-ID": "m2"},
                json={"room_id": "metrics", "message": "count me"},
            )
            assert r.status_code == 201
            await s.wait_messages(1)
            text = (await http.get("/metrics")).text
            assert metric(text, 'hubbub_connections{transport="sse"}') >= 1
            assert metric(text, "hubbub_messages_total") >= 1
            assert metric(text, "hubbub_events_delivered_total") >= 1
            assert metric(text, "hubbub_delivery_latency_seconds_count") >= 1


async def test_metrics_token(data_dir: Path) -> None:
    server = Server(data_dir, auth="trust", args=["--metrics-token", "tok-123"]).start()
    try:
        assert httpx.get(server.url + "/metrics").status_code == 401
        ok = httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer tok-123"})
        assert ok.status_code == 200
        assert "hubbub_messages_total" in ok.text
    finally:
        server.stop()


async def test_closed_streams_leave_no_connection_task_or_memory(trust_server: Server) -> None:
    async with client(trust_server.url) as http:

        async def churn(n: int) -> None:
            for i in range(n):
                async with open_stream(
                    http, f"/chat/room/churn{i % 5}/events", params={"user_id": f"c{i}"}
                ):
                    pass

        await churn(50)
        await asyncio.sleep(0.3)
        baseline = metric((await http.get("/metrics")).text, "hubbub_asyncio_tasks")
        rss_before = trust_server.rss_kib()
        await asyncio.gather(*[churn(60) for _ in range(5)])
        await asyncio.sleep(0.5)
        text = (await http.get("/metrics")).text
        assert metric(text, 'hubbub_connections{transport="sse"}') == 0
        assert metric(text, "hubbub_asyncio_tasks") <= baseline
        assert trust_server.rss_kib() - rss_before < 8 * 1024
