"""File names: what a client sends is only a label. It is cleaned to something safe to store,
show and put in a header, and it never becomes a path (the bytes live under a server id)."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

MAX_NAME_BYTES = 255
MAX_EXTENSION_CHARS = 16
FALLBACK_NAME = "file"

# Bidirectional controls can disguise a name ("gnp.exe" shown as "exe.png"). Control characters
# (category Cc) go too; line breaks and other whitespace runs become one space.
_INVISIBLE = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
)


def safe_filename(raw: str | None) -> str:
    """The last path component, without control or bidi characters, leading dots or trailing
    dots and spaces, at most 255 UTF-8 bytes (the extension kept); ``"file"`` if nothing is left.
    """
    if not raw:
        return FALLBACK_NAME
    name = unicodedata.normalize("NFC", raw)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        " " if ch in "\t\n\r\v\f" else ch
        for ch in name
        if ch in "\t\n\r\v\f" or (unicodedata.category(ch) != "Cc" and ch not in _INVISIBLE)
    )
    name = " ".join(name.split())
    name = name.lstrip(". ").rstrip(". ")
    name = _truncate(name)
    return name or FALLBACK_NAME


def _truncate(name: str) -> str:
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > MAX_EXTENSION_CHARS:
        stem, ext = name, ""
    suffix = "." + ext if ext else ""
    budget = MAX_NAME_BYTES - len(suffix.encode())
    cut = stem.encode()[:budget].decode("utf-8", errors="ignore").rstrip(". ")
    return cut + suffix


def content_disposition(disposition: str, name: str) -> str:
    """RFC 6266: an ASCII ``filename`` for old clients and ``filename*`` (RFC 5987) with the
    exact UTF-8 name for everyone else."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ascii_name = "".join(
        "_" if ch in '"\\%' else ch for ch in ascii_name if 0x20 <= ord(ch) < 0x7F
    ).strip(" .")
    if not ascii_name or ascii_name.startswith("."):
        ascii_name = FALLBACK_NAME
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
