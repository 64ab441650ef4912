"""The pure rules of file sharing (names, content types) and the local FileStore's promises:
streamed, all or nothing (no partial file after any failure, cancellation included), ids only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hubbub.files.base import FileTooLarge, new_file_id, valid_file_id
from hubbub.files.local import LocalFileStore
from hubbub.files.names import content_disposition, safe_filename
from hubbub.files.sniff import Sniffer, disposition


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "file"),
        ("", "file"),
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("dir/", "file"),
        ("...", "file"),
        ("name.", "name"),
        ("a\x00b\x07c\x7f.txt", "abc.txt"),
        ("line\nbreak.txt", "line break.txt"),
        ("x\u2028y", "x y"),
        ("\u202egnp.exe", "gnp.exe"),
        ("  spaced   out  .txt ", "spaced out .txt"),
        ("cafe\u0301.txt", "café.txt"),
    ],
)
def test_safe_filename(raw: str | None, expected: str) -> None:
    assert safe_filename(raw) == expected


def test_safe_filename_cuts_long_names_at_code_points() -> None:
    for raw in ("a" * 300 + ".tar.gz", "é" * 300 + ".png", "😀" * 100, "x." + "y" * 300):
        name = safe_filename(raw)
        assert len(name.encode()) <= 255
        assert name.encode().decode() == name
    assert safe_filename("é" * 300 + ".png").endswith(".png")
    assert safe_filename("a" * 300 + ".tar.gz").endswith(".gz")


def test_content_disposition_is_header_safe() -> None:
    header = content_disposition("attachment", 'naïve "quote" \\ 100%.txt')
    assert header.startswith('attachment; filename="')
    assert header.isascii()
    fallback = header.split('filename="', 1)[1].split('"; ', 1)[0]
    assert '"' not in fallback and "\\" not in fallback
    assert "filename*=UTF-8''na%C3%AFve%20%22quote%22%20%5C%20100%25.txt" in header
    assert 'filename="file"' in content_disposition("inline", "日本語")


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"\x89PNG\r\n\x1a\n", b"rest"], "image/png"),
        ([b"\x89P", b"NG\r\n\x1a\nrest"], "image/png"),
        ([b"\xff\xd8\xff\xdb"], "image/jpeg"),
        ([b"GIF87a..."], "image/gif"),
        ([b"RIFF\x00\x00\x00\x00WEBPVP8L"], "image/webp"),
        ([b"RIFF\x00\x00\x00\x00WAVEfmt "], "application/octet-stream"),
        ([b"%PDF-1.4"], "application/pdf"),
        ([b"PK\x03\x04"], "application/zip"),
        ([b"hello ", "wörld".encode()], "text/plain"),
        (["wö".encode()[:2], "wö".encode()[2:]], "text/plain"),  # split inside a character
        ([b"caf\xc3"], "application/octet-stream"),  # truncated UTF-8
        ([b"text", b"\x00"], "application/octet-stream"),
        ([b"\xff\xfe"], "application/octet-stream"),
        ([b""], "text/plain"),
    ],
)
def test_sniffer(chunks: list[bytes], expected: str) -> None:
    sniffer = Sniffer()
    for c in chunks:
        sniffer.feed(c)
    assert sniffer.content_type() == expected


def test_only_images_are_inline() -> None:
    for t in ("image/png", "image/jpeg", "image/gif", "image/webp"):
        assert disposition(t) == "inline"
    for t in ("image/svg+xml", "text/html", "text/plain", "application/pdf", "application/zip"):
        assert disposition(t) == "attachment"


def test_file_ids() -> None:
    fid = new_file_id()
    assert valid_file_id(fid)
    for bad in ("", "..", "../" + fid[3:], fid.upper(), fid + "0", fid[:-1] + "/", fid + "\n"):
        assert not valid_file_id(bad)


async def _chunks(*parts: bytes, fail: BaseException | None = None) -> AsyncIterator[bytes]:
    for p in parts:
        yield p
        await asyncio.sleep(0)
    if fail is not None:
        raise fail


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_local_store_round_trip(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    await store.start()
    fid = new_file_id()
    parts = [bytes([i]) * 100_000 for i in range(10)]
    assert await store.save(fid, _chunks(*parts), max_bytes=10**7) == 1_000_000
    stored = await store.open(fid)
    assert stored is not None
    assert stored.size == 1_000_000
    assert stored.path.read_bytes() == b"".join(parts)
    assert stored.path.parent.parent == (tmp_path / "files").resolve()
    assert _all_files(tmp_path) == [stored.path]
    assert await store.delete(fid) is True
    assert await store.delete(fid) is False
    assert await store.open(fid) is None
    assert _all_files(tmp_path) == []


async def test_local_store_leaves_nothing_on_failure(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    await store.start()
    big = b"x" * 300_000
    with pytest.raises(FileTooLarge):
        await store.save(new_file_id(), _chunks(big, big, big), max_bytes=500_000)
    with pytest.raises(ConnectionError):
        await store.save(new_file_id(), _chunks(big, big, fail=ConnectionError()), max_bytes=10**7)
    assert _all_files(tmp_path) == []


async def test_local_store_leaves_nothing_when_cancelled(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    await store.start()
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"y" * 100_000
            started.set()
            await asyncio.sleep(0.001)

    task = asyncio.create_task(store.save(new_file_id(), endless(), max_bytes=10**9))
    await started.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.05)
    assert _all_files(tmp_path) == []


async def test_local_store_refuses_ids_that_are_not_its_own(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    await store.start()
    for bad in ("../secret", "..", "/etc/passwd", "ab/../../x", "A" * 32):
        with pytest.raises(ValueError, match="invalid file id"):
            await store.save(bad, _chunks(b"x"), max_bytes=10)
        assert await store.open(bad) is None
        assert await store.delete(bad) is False
    assert _all_files(tmp_path) == []


async def test_local_store_start_clears_stale_partial_files(tmp_path: Path) -> None:
    import os

    root = tmp_path / "files"
    (root / "ab").mkdir(parents=True)
    stale = root / "ab" / ".upload-old.part"
    fresh = root / "ab" / ".upload-new.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (0, 0))
    await LocalFileStore(root).start()
    assert not stale.exists()
    assert fresh.exists()  # perhaps another process's upload in progress
