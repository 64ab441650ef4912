"""File sharing against a real server: upload (streamed to disk, size limit, safe names, detected
content types), the file message on other members' streams and in history, downloads for members
only with safe headers, deletes, path traversal attempts, and the upload's memory footprint.

Request-shape checks run on the trust-mode server; membership rules on the jwt-mode server; the
size limit on a server started with a small ``HUBBUB_MAX_UPLOAD_BYTES``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Account, Server, assert_error, client, open_stream, signup

SMALL_LIMIT = 64 * 1024

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + os.urandom(64)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(64)
GIF = b"GIF89a" + os.urandom(64)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + os.urandom(64)
PDF = b"%PDF-1.7\n" + os.urandom(64)
ZIP = b"PK\x03\x04" + os.urandom(64)
HTML = b"<!doctype html><script>alert(document.cookie)</script>"
BINARY = b"\x00\x01\x02\xfe\xff" + os.urandom(64)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def as_user(user: str) -> dict[str, str]:
    return {"User-ID": user}


def stored_files(server: Server) -> set[Path]:
    """Every regular file under the server's files directory (temporary files included)."""
    root = server.data_dir / "files"
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def data_tree(root: Path) -> set[Path]:
    return {p for p in root.parent.rglob("*") if p.is_file()}


def multipart_body(
    parts: list[tuple[str, str | None, bytes]], boundary: str = "hubbubTestBoundary7MA4YWxk"
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body built by hand, so names go out byte for byte as given."""
    out = bytearray()
    for name, filename, data in parts:
        out += f"--{boundary}\r\n".encode()
        disposition = f'Content-Disposition: form-data; name="{name}"'.encode()
        if filename is not None:
            disposition += b'; filename="' + filename.encode("utf-8", "surrogatepass") + b'"'
        out += disposition + b"\r\n"
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


async def upload(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    room: str,
    data: bytes,
    name: str = "file.bin",
    *,
    caption: str | None = None,
    declared: str = "application/octet-stream",
) -> httpx.Response:
    form = {"message": caption} if caption is not None else None
    return await http.post(
        f"/chat/room/{room}/files",
        headers=headers,
        files={"file": (name, data, declared)},
        data=form,
    )


async def uploaded(
    http: httpx.AsyncClient, headers: dict[str, str], room: str, data: bytes, **kw: Any
) -> dict[str, Any]:
    r = await upload(http, headers, room, data, **kw)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == "sent"
    message: dict[str, Any] = body["message"]
    return message


async def history(
    http: httpx.AsyncClient, headers: dict[str, str], room: str
) -> list[dict[str, Any]]:
    r = await http.get(f"/chat/room/{room}/history", headers=headers, params={"limit": 200})
    assert r.status_code == 200, r.text
    msgs: list[dict[str, Any]] = r.json()
    return msgs


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A trust-mode server whose uploads are limited to 64 KiB."""
    server = Server(
        tmp_path_factory.mktemp("small"),
        auth="trust",
        env={
            "HUBBUB_MAX_UPLOAD_BYTES": str(SMALL_LIMIT),
            "HUBBUB_RATE_LIMIT_BURST": "1000",
            "HUBBUB_RATE_LIMIT_PER_SECOND": "1000",
        },
    )
    server.start()
    yield server
    server.stop()


# --- the round trip ---------------------------------------------------------------------------


async def test_upload_streams_to_members_and_downloads_byte_for_byte(trust_server: Server) -> None:
    room = uid("files")
    data = os.urandom(3 * 1024 * 1024)
    async with client(trust_server.url) as http:
        r = await http.post(
            "/chat/messages", headers=as_user("alice"), json={"room_id": room, "message": "hi"}
        )
        assert r.status_code == 201, r.text
        async with open_stream(http, f"/chat/room/{room}/events", params={"user_id": "bob"}) as s:
            msg = await uploaded(
                http, as_user("alice"), room, data, name="holiday.bin", caption="the photos"
            )
            assert msg["type"] == "file"
            assert msg["text"] == "the photos"
            assert msg["room_id"] == room
            assert msg["seq"] == 2
            info = msg["file"]
            assert set(info) == {"id", "url", "name", "size", "content_type"}
            assert info["name"] == "holiday.bin"
            assert info["size"] == len(data)
            assert info["content_type"] == "application/octet-stream"
            assert info["url"] == f"/chat/files/{info['id']}"

            [live] = await s.wait_messages(1)
            assert live == msg
            assert s.events[-1].id == "2"

        r = await http.get(info["url"], headers=as_user("bob"))
        assert r.status_code == 200, r.text
        assert r.content == data
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["content-length"] == str(len(data))
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-disposition"].startswith("attachment;")
        assert "filename*=UTF-8''holiday.bin" in r.headers["content-disposition"]
        assert "sandbox" in r.headers["content-security-policy"]

        r = await http.get(f"{info['url']}/any-name.bin", headers=as_user("alice"))
        assert r.status_code == 200
        assert r.content == data

        msgs = await history(http, as_user("bob"), room)
        assert [m["type"] for m in msgs] == ["text", "file"]
        assert msgs[-1] == msg

    on_disk = trust_server.data_dir / "files" / info["id"][:2] / info["id"]
    assert on_disk.read_bytes() == data


async def test_caption_is_optional_and_may_be_empty(trust_server: Server) -> None:
    room = uid("caption")
    async with client(trust_server.url) as http:
        no_caption = await uploaded(http, as_user("alice"), room, b"one")
        empty = await uploaded(http, as_user("alice"), room, b"two", caption="")
        unicode = await uploaded(http, as_user("alice"), room, b"3", caption="  café 🎉  ")
    assert no_caption["text"] == ""
    assert empty["text"] == ""
    assert unicode["text"] == "  café 🎉  "


async def test_empty_file_is_a_file(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        msg = await uploaded(http, as_user("alice"), uid("empty"), b"", name="empty.txt")
        assert msg["file"]["size"] == 0
        r = await http.get(msg["file"]["url"], headers=as_user("alice"))
    assert r.status_code == 200
    assert r.content == b""


# --- content types and headers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "declared", "detected", "disposition"),
    [
        (PNG, "application/octet-stream", "image/png", "inline"),
        (JPEG, "image/jpeg", "image/jpeg", "inline"),
        (GIF, "image/gif", "image/gif", "inline"),
        (WEBP, "image/webp", "image/webp", "inline"),
        (PDF, "application/pdf", "application/pdf", "attachment"),
        (ZIP, "application/zip", "application/zip", "attachment"),
        (b"plain words\n", "text/plain", "text/plain", "attachment"),
        (HTML, "text/html", "text/plain", "attachment"),
        (b"<svg onload=alert(1)>", "image/svg+xml", "text/plain", "attachment"),
        (BINARY, "image/png", "application/octet-stream", "attachment"),
        (HTML, "image/png", "text/plain", "attachment"),
    ],
    # Named, not the random bytes: pytest-xdist needs every worker to collect the same ids.
    ids=[
        "png-declared-octet-stream",
        "jpeg",
        "gif",
        "webp",
        "pdf",
        "zip",
        "text",
        "html-served-as-text",
        "svg-served-as-text",
        "binary-declared-png",
        "html-declared-png",
    ],
)
async def test_content_type_is_detected_not_declared(
    trust_server: Server, data: bytes, declared: str, detected: str, disposition: str
) -> None:
    async with client(trust_server.url) as http:
        msg = await uploaded(
            http, as_user("alice"), uid("types"), data, name="upload", declared=declared
        )
        assert msg["file"]["content_type"] == detected
        r = await http.get(msg["file"]["url"], headers=as_user("alice"))
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-type"].split(";")[0] == detected
    assert r.headers["content-disposition"].split(";")[0] == disposition
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in r.headers["content-security-policy"]


async def test_content_disposition_has_ascii_fallback_and_utf8_name(trust_server: Server) -> None:
    name = 'Résumé "final" 日本.pdf'
    async with client(trust_server.url) as http:
        msg = await uploaded(http, as_user("alice"), uid("names"), PDF, name=name)
        r = await http.get(msg["file"]["url"], headers=as_user("alice"))
    header = r.headers["content-disposition"]
    assert header.startswith('attachment; filename="')
    fallback = header.split('filename="', 1)[1].split('"', 1)[0]
    assert fallback.isascii() and fallback.endswith(".pdf")
    encoded = header.split("filename*=UTF-8''", 1)[1]
    assert httpx.URL("/x?" + "n=" + encoded).params["n"] == msg["file"]["name"]
    assert "\r" not in header and "\n" not in header


# --- names and paths --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\x", "x"),
        ("/absolute/path/report.txt", "report.txt"),
        ("C:\\Users\\me\\report.txt", "report.txt"),
        ("..", "file"),
        ("", "file"),
        ("   ", "file"),
        (".bashrc", "bashrc"),
        ("a\x00b.txt", "ab.txt"),
        ("esc\x1b[31mred.txt", "esc[31mred.txt"),
        ("tab\tname.txt", "tab name.txt"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
    ],
)
async def test_file_names_are_cleaned(trust_server: Server, raw: str, expected: str) -> None:
    before = data_tree(trust_server.data_dir)
    body, headers = multipart_body([("file", raw, b"contents")])
    async with client(trust_server.url) as http:
        r = await http.post(
            f"/chat/room/{uid('names')}/files",
            headers={**as_user("alice"), **headers},
            content=body,
        )
        assert r.status_code == 201, r.text
        info = r.json()["message"]["file"]
    assert info["name"] == expected
    new = data_tree(trust_server.data_dir) - before
    files_dir = (trust_server.data_dir / "files").resolve()
    written = [p for p in new if p.suffix not in {".log", ".db-wal", ".db-shm"}]
    assert written, new
    for path in written:
        assert path.resolve().is_relative_to(files_dir), path
        assert path.name == info["id"]


@pytest.mark.parametrize("raw", ["newline\n.txt", "cr\r.txt"])
async def test_names_with_line_breaks_never_reach_a_header(trust_server: Server, raw: str) -> None:
    """httpx sends these percent-encoded, as browsers do; raw they would end the part header."""
    async with client(trust_server.url) as http:
        msg = await uploaded(http, as_user("alice"), uid("names"), b"x", name=raw)
        r = await http.get(msg["file"]["url"], headers=as_user("alice"))
    assert "\n" not in msg["file"]["name"] and "\r" not in msg["file"]["name"]
    assert r.status_code == 200


async def test_very_long_names_are_cut_to_255_bytes_keeping_the_extension(
    trust_server: Server,
) -> None:
    async with client(trust_server.url) as http:
        ascii_msg = await uploaded(
            http, as_user("alice"), uid("long"), b"x", name="a" * 1000 + ".txt"
        )
        wide_msg = await uploaded(
            http, as_user("alice"), uid("long"), b"x", name="日" * 400 + ".pdf"
        )
    for msg, ext in ((ascii_msg, ".txt"), (wide_msg, ".pdf")):
        name = msg["file"]["name"]
        assert len(name.encode()) <= 255
        assert name.endswith(ext)
        assert len(name.encode()) > 200


@pytest.mark.parametrize(
    "path",
    [
        "/chat/files/..%2F..%2Fetc%2Fpasswd",
        "/chat/files/..%2f..%2fhubbub.db",
        "/chat/files/%2e%2e/secret.key",
        "/chat/files/..",
        "/chat/files/.",
        "/chat/files/secret.key",
        "/chat/files/..%5C..%5Csecret.key",
        "/chat/files/%2Fetc%2Fpasswd",
        "/chat/files/" + "A" * 32,
        "/chat/files/" + "0" * 31,
        "/chat/files/" + "0" * 32,
        "/chat/files/" + "0" * 32 + "%00",
    ],
)
async def test_download_with_a_bad_or_unknown_id_is_404(trust_server: Server, path: str) -> None:
    async with client(trust_server.url) as http:
        r = await http.get(path, headers=as_user("alice"))
    assert_error(r, 404)


# --- limits -----------------------------------------------------------------------------------


async def test_upload_at_the_limit_is_accepted(small_server: Server) -> None:
    async with client(small_server.url) as http:
        msg = await uploaded(http, as_user("alice"), uid("limit"), os.urandom(SMALL_LIMIT))
    assert msg["file"]["size"] == SMALL_LIMIT


@pytest.mark.parametrize("size", [SMALL_LIMIT + 1, 4 * SMALL_LIMIT, 20 * 1024 * 1024])
async def test_oversize_upload_is_413_and_leaves_nothing(small_server: Server, size: int) -> None:
    room = uid("big")
    async with client(small_server.url) as http:
        ok = await uploaded(http, as_user("alice"), room, b"small")
        before = stored_files(small_server)
        r = await upload(http, as_user("alice"), room, os.urandom(size), caption="too big")
        err = assert_error(r, 413, "file_too_large")
        assert err["details"]["limit"] == SMALL_LIMIT
        assert stored_files(small_server) == before
        assert [m["id"] for m in await history(http, as_user("alice"), room)] == [ok["id"]]


async def test_oversize_chunked_upload_is_stopped_while_streaming(small_server: Server) -> None:
    """No Content-Length to refuse up front: the limit stops the stream itself."""
    room = uid("chunked")
    body, headers = multipart_body(
        [("message", None, b"caption"), ("file", "big.bin", os.urandom(SMALL_LIMIT * 3))]
    )

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    async with client(small_server.url) as http:
        ok = await uploaded(http, as_user("alice"), room, b"small")
        before = stored_files(small_server)
        r = await http.post(
            f"/chat/room/{room}/files", headers={**as_user("alice"), **headers}, content=chunks()
        )
        assert_error(r, 413, "file_too_large")
        assert stored_files(small_server) == before
        assert [m["id"] for m in await history(http, as_user("alice"), room)] == [ok["id"]]

        # A chunked upload under the limit goes through, and the caption after the file counts.
        body2, headers2 = multipart_body(
            [("file", "ok.bin", b"y" * 1000), ("message", None, b"after the file")]
        )

        async def chunks2() -> AsyncIterator[bytes]:
            for i in range(0, len(body2), 100):
                yield body2[i : i + 100]

        r = await http.post(
            f"/chat/room/{room}/files", headers={**as_user("alice"), **headers2}, content=chunks2()
        )
        assert r.status_code == 201, r.text
        assert r.json()["message"]["text"] == "after the file"
        assert r.json()["message"]["file"]["size"] == 1000


async def test_no_partial_files_are_left_after_many_refusals(small_server: Server) -> None:
    room = uid("many")
    async with client(small_server.url) as http:
        await uploaded(http, as_user("alice"), room, b"x")
        before = stored_files(small_server)
        results = await asyncio.gather(
            *[upload(http, as_user("alice"), room, os.urandom(SMALL_LIMIT * 2)) for _ in range(8)]
        )
    assert {r.status_code for r in results} == {413}
    assert stored_files(small_server) == before
    assert not [p for p in stored_files(small_server) if p.name.endswith(".part")]


async def test_upload_is_never_held_in_memory(trust_server: Server) -> None:
    data = os.urandom(20 * 1024 * 1024)
    room = uid("memory")
    async with client(trust_server.url) as http:
        for _ in range(2):  # warm up every code path (and the allocator) with the same size
            await uploaded(http, as_user("alice"), room, data[: 4 * 1024 * 1024])
        base = trust_server.rss_kib()
        msg = await uploaded(http, as_user("alice"), room, data)
        grown = trust_server.rss_kib() - base
    assert msg["file"]["size"] == len(data)
    assert grown < 8 * 1024, f"server RSS grew by {grown} KiB for a 20 MiB upload"


# --- bad requests -----------------------------------------------------------------------------


async def test_missing_file_field_is_422(trust_server: Server) -> None:
    room = uid("missing")
    async with client(trust_server.url) as http:
        r = await http.post(
            f"/chat/room/{room}/files",
            headers=as_user("alice"),
            files={"other": ("x.txt", b"data")},
            data={"message": "no file here"},
        )
        assert_error(r, 422, "missing_file")
        body, headers = multipart_body([("message", None, b"just a caption")])
        r = await http.post(
            f"/chat/room/{room}/files", headers={**as_user("alice"), **headers}, content=body
        )
        assert_error(r, 422, "missing_file")
        # An empty <input type="file">: no name, no bytes.
        body, headers = multipart_body([("file", "", b"")])
        r = await http.post(
            f"/chat/room/{room}/files", headers={**as_user("alice"), **headers}, content=body
        )
        assert_error(r, 422, "missing_file")
        assert await history(http, as_user("alice"), room) == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"file": "x"}'),
        ("text/plain", b"hello"),
        ("application/x-www-form-urlencoded", b"file=x"),
        ("multipart/form-data", b"--x\r\n"),  # no boundary
        (None, b"raw bytes"),
    ],
)
async def test_not_multipart_is_415(
    trust_server: Server, content_type: str | None, body: bytes
) -> None:
    headers = as_user("alice")
    if content_type is not None:
        headers["Content-Type"] = content_type
    async with client(trust_server.url) as http:
        r = await http.post(f"/chat/room/{uid('json')}/files", headers=headers, content=body)
    assert_error(r, 415, "unsupported_media_type")


async def test_malformed_multipart_is_400_and_leaves_nothing(trust_server: Server) -> None:
    room = uid("malformed")
    body, headers = multipart_body([("file", "x.bin", os.urandom(100_000))])
    async with client(trust_server.url) as http:
        await uploaded(http, as_user("alice"), room, b"x")
        before = stored_files(trust_server)
        r = await http.post(
            f"/chat/room/{room}/files",
            headers={**as_user("alice"), **headers},
            content=body[: len(body) // 2],  # the closing boundary never comes
        )
        assert_error(r, 400, "malformed_multipart")
        assert stored_files(trust_server) == before
        assert len(await history(http, as_user("alice"), room)) == 1


@pytest.mark.parametrize(
    ("caption", "code"),
    [("x" * 4001, "message_too_long"), ("   ", "empty_message"), ("a\x00b", "invalid_message")],
)
async def test_bad_caption_is_422_and_leaves_nothing(
    trust_server: Server, caption: str, code: str
) -> None:
    room = uid("caption")
    async with client(trust_server.url) as http:
        await uploaded(http, as_user("alice"), room, b"x")
        before = stored_files(trust_server)
        r = await upload(http, as_user("alice"), room, os.urandom(1000), caption=caption)
        assert_error(r, 422, code)
        assert stored_files(trust_server) == before
        assert len(await history(http, as_user("alice"), room)) == 1


async def test_caption_at_the_limit_is_accepted(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        msg = await uploaded(http, as_user("alice"), uid("cap"), b"x", caption="é" * 4000)
    assert msg["text"] == "é" * 4000


async def test_bad_room_id_is_rejected(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        r = await upload(http, as_user("alice"), "bad room!", b"x")
    assert_error(r, 422, "invalid_room_id")


# --- deletes ----------------------------------------------------------------------------------


async def test_deleting_the_message_deletes_the_file(trust_server: Server) -> None:
    room = uid("delete")
    async with client(trust_server.url) as http:
        msg = await uploaded(http, as_user("alice"), room, PNG, name="pic.png")
        path = trust_server.data_dir / "files" / msg["file"]["id"][:2] / msg["file"]["id"]
        assert path.exists()
        async with open_stream(http, f"/chat/room/{room}/events", params={"user_id": "bob"}) as s:
            r = await http.delete(f"/chat/messages/{msg['id']}", headers=as_user("alice"))
            assert r.status_code == 200, r.text
            assert r.json()["file"] is None
            assert r.json()["deleted"] is True
            await s.wait_for(lambda s: bool(s.named("message_deleted")))
            assert s.named("message_deleted")[0].json()["file"] is None
        r = await http.get(msg["file"]["url"], headers=as_user("alice"))
        assert_error(r, 404, "file_not_found")
        [gone] = await history(http, as_user("alice"), room)
        assert gone["deleted"] is True and gone["file"] is None
    assert not path.exists()


# --- who may upload and download (jwt) --------------------------------------------------------


_PEOPLE: dict[str, list[Account]] = {}


async def people(server: Server) -> list[Account]:
    if server.url not in _PEOPLE:
        _PEOPLE[server.url] = list(
            await asyncio.gather(*[signup(server, p) for p in ("owner", "member", "outsider")])
        )
    return _PEOPLE[server.url]


async def make_room(http: httpx.AsyncClient, owner: Account, visibility: str) -> str:
    r = await http.post(
        "/chat/rooms", headers=owner.auth, json={"name": uid("room"), "visibility": visibility}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_jwt_members_share_and_download(jwt_server: Server) -> None:
    owner, member, _ = await people(jwt_server)
    async with client(jwt_server.url) as http:
        room = await make_room(http, owner, "private")
        r = await http.post(
            f"/chat/room/{room}/members", headers=owner.auth, json={"user_id": member.id}
        )
        assert r.status_code == 201, r.text
        msg = await uploaded(http, member.auth, room, PNG, name="shot.png", caption="look")
        assert msg["user_id"] == member.id
        r = await http.get(msg["file"]["url"], headers=owner.auth)
        assert r.status_code == 200
        assert r.content == PNG
        assert r.headers["content-disposition"].startswith("inline;")


@pytest.mark.parametrize("visibility", ["public", "private"])
async def test_jwt_non_members_cannot_download(jwt_server: Server, visibility: str) -> None:
    owner, _, outsider = await people(jwt_server)
    async with client(jwt_server.url) as http:
        room = await make_room(http, owner, visibility)
        msg = await uploaded(http, owner.auth, room, b"secret plans")
        r = await http.get(msg["file"]["url"], headers=outsider.auth)
        assert_error(r, 404, "file_not_found")
        r = await http.get(msg["file"]["url"] + "/plans.txt", headers=outsider.auth)
        assert_error(r, 404, "file_not_found")
        r = await http.get(msg["file"]["url"])
        assert_error(r, 401)
        if visibility == "public":  # joining makes them a member, and then they may
            r = await http.post(f"/chat/room/{room}/join", headers=outsider.auth)
            assert r.status_code == 200, r.text
            r = await http.get(msg["file"]["url"], headers=outsider.auth)
            assert r.status_code == 200
            assert r.content == b"secret plans"


async def test_jwt_leaving_the_room_ends_download_access(jwt_server: Server) -> None:
    owner, member, _ = await people(jwt_server)
    async with client(jwt_server.url) as http:
        room = await make_room(http, owner, "public")
        assert (await http.post(f"/chat/room/{room}/join", headers=member.auth)).status_code == 200
        msg = await uploaded(http, owner.auth, room, b"data")
        assert (await http.get(msg["file"]["url"], headers=member.auth)).status_code == 200
        assert (await http.post(f"/chat/room/{room}/leave", headers=member.auth)).status_code == 200
        assert_error(await http.get(msg["file"]["url"], headers=member.auth), 404)


async def test_jwt_non_members_cannot_upload(jwt_server: Server) -> None:
    owner, _, outsider = await people(jwt_server)
    async with client(jwt_server.url) as http:
        public = await make_room(http, owner, "public")
        private = await make_room(http, owner, "private")
        before = stored_files(jwt_server)
        r = await upload(http, outsider.auth, public, os.urandom(10_000))
        assert_error(r, 403, "not_a_member")
        r = await upload(http, outsider.auth, private, os.urandom(10_000))
        assert_error(r, 404, "room_not_found")
        r = await upload(http, outsider.auth, uid("nowhere"), os.urandom(10_000))
        assert_error(r, 404, "room_not_found")
        r = await upload(http, {}, public, os.urandom(10_000))
        assert_error(r, 401)
        assert stored_files(jwt_server) == before
        assert await history(http, owner.auth, public) == []
        assert await history(http, owner.auth, private) == []


async def test_jwt_user_id_must_be_the_caller(jwt_server: Server) -> None:
    owner, member, _ = await people(jwt_server)
    async with client(jwt_server.url) as http:
        room = await make_room(http, owner, "public")
        r = await http.post(
            f"/chat/room/{room}/files",
            headers=owner.auth,
            params={"user_id": member.id},
            files={"file": ("x.txt", b"x")},
        )
        assert_error(r, 403, "user_mismatch")


async def test_uploads_count_against_the_rate_limit(tmp_path: Path) -> None:
    server = Server(
        tmp_path / "rl",
        auth="trust",
        env={"HUBBUB_RATE_LIMIT_BURST": "2", "HUBBUB_RATE_LIMIT_PER_SECOND": "0.1"},
    )
    server.start()
    try:
        async with client(server.url) as http:
            room = uid("rate")
            codes = [
                (await upload(http, as_user("alice"), room, b"x")).status_code for _ in range(3)
            ]
            assert codes == [201, 201, 429]
            r = await upload(http, as_user("alice"), room, b"x")
            assert_error(r, 429, "rate_limited")
            assert "retry-after" in r.headers
    finally:
        server.stop()


async def test_openapi_documents_the_file_routes(trust_server: Server) -> None:
    async with client(trust_server.url) as http:
        spec = (await http.get("/openapi.json")).json()
    post = spec["paths"]["/chat/room/{room_id}/files"]["post"]
    form = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"]
    assert set(form["properties"]) == {"file", "message"}
    assert {"201", "403", "404", "413", "415", "422"} <= set(post["responses"])
    get = spec["paths"]["/chat/files/{file_id}"]["get"]
    assert "X-Content-Type-Options" in get["responses"]["200"]["headers"]
    assert "404" in get["responses"]
    assert {"206", "416"} <= set(get["responses"])  # Range requests, on every file store
