"""Files across nodes: two real ``hubbub serve`` processes on one PostgreSQL database and the
Redis broker, behind no load balancer but each asked in turn. A file uploaded through one is
downloaded, byte for byte, through the other; retention run by either node deletes it from
the shared store. Once with the database file store (the default with PostgreSQL), once with
S3 (a real moto server in its own process). Also: ``--files`` values that are wrong stop
``hubbub serve`` with one line naming the setting, exit code 2.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.s3_support import S3_ENV, bucket_contents, moto_server, new_bucket
from tests.support import (
    REDIS_URL,
    Server,
    client,
    create_pg_database,
    drop_pg_database,
    redis_available,
)

ROOM = "shared-files"
START_TIMEOUT = 90.0  # two nodes, migrations and a loaded 2-core CI machine


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


def nodes_env(pg_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    redis_available()
    return {
        "HUBBUB_DATABASE": pg_url,
        "HUBBUB_BROKER": REDIS_URL,
        "HUBBUB_BROKER_PREFIX": f"hubbub:t{secrets.token_hex(5)}:room:",
        "HUBBUB_RATE_LIMIT_BURST": "1000",
        "HUBBUB_RATE_LIMIT_PER_SECOND": "1000",
        **(extra or {}),
    }


async def age_all_messages(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("UPDATE messages SET created_at = '2000-01-01T00:00:00.000Z'")
        await conn.execute("UPDATE files SET created_at = '2000-01-01T00:00:00.000Z'")
    finally:
        await conn.close()


async def database_rows(pg_url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(pg_url)
    try:
        blobs = await conn.fetchval("SELECT count(*) FROM file_blobs")
        chunks = await conn.fetchval("SELECT count(*) FROM file_chunks")
    finally:
        await conn.close()
    return int(blobs), int(chunks)


def peak_rss_kib(server: Server) -> int:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def local_files(server: Server) -> list[Path]:
    root = server.data_dir / "files"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def share_across_nodes(tmp_path: Path, env: dict[str, str]) -> tuple[Server, str]:
    """Node A takes an upload, node B serves it; B then restarts with retention on, which
    deletes the (aged) message and its file. Returns node A (still running) and the file id."""
    a = Server(tmp_path / "a", auth="trust", env=env).start(START_TIMEOUT)
    b = Server(tmp_path / "b", auth="trust", env=env).start(START_TIMEOUT)
    try:
        data = os.urandom(3 * 1024 * 1024 + 17)
        async with client(a.url) as http_a, client(b.url) as http_b:
            r = await http_a.post(
                f"/chat/room/{ROOM}/files",
                headers={"User-ID": "alice"},
                files={"file": ("photo.bin", data, "application/octet-stream")},
            )
            assert r.status_code == 201, r.text
            info = r.json()["message"]["file"]
            got = await http_b.get(info["url"], headers={"User-ID": "alice"})
            assert got.status_code == 200, got.text
            assert got.content == data
            assert got.headers["content-length"] == str(len(data))
            assert got.headers["x-content-type-options"] == "nosniff"
            assert "photo.bin" in got.headers["content-disposition"]
            # a Range request, served from the shared store by the other node
            part = await http_b.get(
                info["url"], headers={"User-ID": "alice", "Range": "bytes=1000-600000"}
            )
            assert part.status_code == 206
            assert part.content == data[1000:600001]
            assert part.headers["content-range"] == f"bytes 1000-600000/{len(data)}"
            tail = await http_b.get(info["url"], headers={"User-ID": "alice", "Range": "bytes=-10"})
            assert (tail.status_code, tail.content) == (206, data[-10:])
            beyond = await http_b.get(
                info["url"], headers={"User-ID": "alice", "Range": f"bytes={len(data)}-"}
            )
            assert beyond.status_code == 416
            # and back: uploaded on B, read on A
            r2 = await http_b.post(
                f"/chat/room/{ROOM}/files",
                headers={"User-ID": "bob"},
                files={"file": ("two.txt", b"hello from b", "text/plain")},
            )
            assert r2.status_code == 201, r2.text
            back = await http_a.get(r2.json()["message"]["file"]["url"], headers={"User-ID": "bob"})
            assert back.content == b"hello from b"
        assert local_files(a) == [] and local_files(b) == []  # nothing on either node's disk
    finally:
        b.stop()
    await age_all_messages(env["HUBBUB_DATABASE"])
    b = Server(b.data_dir, auth="trust", env=env, args=["--retention-days", "7"], port=b.port)
    b.start(START_TIMEOUT)
    try:
        async with client(a.url) as http_a:
            for _ in range(100):
                gone = await http_a.get(info["url"], headers={"User-ID": "alice"})
                if gone.status_code == 404:
                    break
                await asyncio.sleep(0.1)  # the purge runs as node B starts
            assert gone.status_code == 404
    finally:
        b.stop()
    return a, info["id"]


async def test_two_nodes_share_files_in_the_database(tmp_path: Path, pg_url: str) -> None:
    env = nodes_env(pg_url)  # no --files: PostgreSQL means the database store
    a, _ = await share_across_nodes(tmp_path, env)
    try:
        for _ in range(50):
            if await database_rows(pg_url) == (0, 0):
                break
            await asyncio.sleep(0.1)
        assert await database_rows(pg_url) == (0, 0)  # retention removed the bytes too
    finally:
        a.stop()


async def test_two_nodes_share_files_in_s3(tmp_path: Path, pg_url: str, s3_endpoint: str) -> None:
    bucket = new_bucket(s3_endpoint)
    env = nodes_env(
        pg_url,
        {
            **S3_ENV,
            "HUBBUB_FILES": f"s3://{bucket}/uploads",
            "HUBBUB_FILES_ENDPOINT": s3_endpoint,
        },
    )
    node_a, file_id = await share_across_nodes(tmp_path, env)
    try:
        keys, uploads = await asyncio.to_thread(bucket_contents, s3_endpoint, bucket)
        assert f"uploads/{file_id}" not in keys  # retention deleted the object
        assert all(k.startswith("uploads/") for k in keys)
        assert uploads == 0
        assert await database_rows(pg_url) == (0, 0)  # the database store was not used
    finally:
        node_a.stop()


def serve_error(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "hubbub", "serve", "--data-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )
    return proc.returncode, proc.stderr.strip()


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--files", "ftp://x"], {}, "local, database (PostgreSQL) or s3://bucket/prefix"),
        ([], {"HUBBUB_FILES": "disk"}, "HUBBUB_FILES"),
        (["--files", "s3://"], {}, "s3://bucket"),
        (["--files", "database"], {}, "needs a PostgreSQL --database"),
    ],
)
def test_bad_files_values_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], named: str
) -> None:
    code, err = serve_error(tmp_path, *args, env=env)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "--files / HUBBUB_FILES" in err and named in err


def test_an_unreachable_bucket_stops_the_server_with_a_clear_message(
    tmp_path: Path, s3_endpoint: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hubbub", "serve", "--data-dir", str(tmp_path), "--auth", "trust"],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            **S3_ENV,
            "HUBBUB_PORT": "0",
            "HUBBUB_FILES": "s3://no-such-bucket-here",
            "HUBBUB_FILES_ENDPOINT": s3_endpoint,
        },
    )
    assert proc.returncode == 3, proc.stderr  # runtime: what the settings name is not there
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: --files / HUBBUB_FILES: the bucket is not reachable at "
        f"{s3_endpoint} (404); check the bucket name, the endpoint (--files-endpoint or "
        "AWS_ENDPOINT_URL) and the AWS credentials"
    ], proc.stderr
    assert "Traceback" not in proc.stderr


async def test_the_database_store_holds_no_file_in_memory(tmp_path: Path, pg_url: str) -> None:
    """A 20 MiB upload and download through a real node on the database store: the server's
    peak RSS (VmHWM: freed buffers count too) grows by far less than the file (by 20+ MiB if
    either were buffered)."""
    server = Server(
        tmp_path / "node",
        auth="trust",
        env={"HUBBUB_DATABASE": pg_url, "HUBBUB_RATE_LIMIT_BURST": "1000"},
    ).start(START_TIMEOUT)
    try:
        data = os.urandom(20 * 1024 * 1024)
        async with client(server.url) as http:

            async def round_trip(body: bytes) -> None:
                r = await http.post(
                    f"/chat/room/{ROOM}/files",
                    headers={"User-ID": "alice"},
                    files={"file": ("big.bin", body, "application/octet-stream")},
                )
                assert r.status_code == 201, r.text
                url = r.json()["message"]["file"]["url"]
                got = 0
                async with http.stream("GET", url, headers={"User-ID": "alice"}) as resp:
                    assert resp.status_code == 200
                    async for chunk in resp.aiter_bytes():
                        got += len(chunk)
                assert got == len(body)

            for _ in range(2):  # warm up every code path (and the allocator) with the same size
                await round_trip(data[: 4 * 1024 * 1024])
            base = peak_rss_kib(server)
            await round_trip(data)
            grown = peak_rss_kib(server) - base
        assert grown < 8 * 1024, f"server peak RSS grew by {grown} KiB for a 20 MiB round trip"
        assert await database_rows(pg_url) == (3, 2 * 8 + 40)  # 512 KiB chunks: 4 MiB twice, 20 MiB
    finally:
        server.stop()
