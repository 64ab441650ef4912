"""Content types from the bytes themselves, never from what the client declared.

Only a few types are recognised, on purpose: the images a browser may show inline (PNG, JPEG,
GIF, WebP), PDF and ZIP by their magic numbers; a file that is valid UTF-8 with no NUL byte is
``text/plain``; everything else is ``application/octet-stream``. HTML and SVG are plain text
here, so a browser never runs an upload as a page.
"""

from __future__ import annotations

import codecs

INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
HEAD_BYTES = 16


def magic_type(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "application/zip"
    return None


class Sniffer:
    """Watches a file go by, chunk by chunk, keeping only its first bytes and a UTF-8 state."""

    __slots__ = ("_decoder", "_head", "_text")

    def __init__(self) -> None:
        self._head = b""
        self._text = True
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, chunk: bytes) -> None:
        if len(self._head) < HEAD_BYTES:
            self._head += chunk[: HEAD_BYTES - len(self._head)]
        if self._text:
            if b"\x00" in chunk:
                self._text = False
                return
            try:
                self._decoder.decode(chunk)
            except UnicodeDecodeError:
                self._text = False

    def content_type(self) -> str:
        found = magic_type(self._head)
        if found is not None:
            return found
        if self._text:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                return "application/octet-stream"
            return "text/plain"
        return "application/octet-stream"


def disposition(content_type: str) -> str:
    return "inline" if content_type in INLINE_TYPES else "attachment"
