"""Full-text search, the pure part: query words and plain-text highlights (no I/O, no SQL).

Words are split the way SQLite's FTS5 ``unicode61 remove_diacritics 2`` tokenizer splits them:
a word is a run of Unicode letters (L*), numbers (N*), private-use characters (Co) and
non-spacing marks (Mn); everything else separates words. Words compare case-insensitively and,
for Latin letters, accent-insensitively ("Café" matches "cafe").

The store turns the words into its own query language (FTS5 ``MATCH``, PostgreSQL ``tsquery``)
by quoting each of them, so user input never reaches a query parser as syntax.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from functools import lru_cache

from hubbub.errors import Invalid

MAX_QUERY_CHARS = 200

Span = tuple[int, int]


@lru_cache(maxsize=4096)
def _is_word_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] in "LN" or cat in ("Co", "Mn")


def _is_diacritic(ch: str) -> bool:
    return 0x300 <= ord(ch) <= 0x36F  # Combining Diacritical Marks


def _is_latin(ch: str) -> bool:
    cp = ord(ch)
    return cp < 0x250 or 0x1E00 <= cp < 0x1F00


@lru_cache(maxsize=4096)
def fold_char(ch: str) -> str:
    """What one character of a word compares as: lower case, Latin accents removed."""
    out: list[str] = []
    for low in ch.lower():
        if _is_diacritic(low):
            continue
        parts = unicodedata.normalize("NFD", low)
        if len(parts) > 1 and _is_latin(parts[0]) and all(_is_diacritic(p) for p in parts[1:]):
            out.append(parts[0])
        else:
            out.append(low)
    return "".join(out)


def fold(word: str) -> str:
    return "".join(fold_char(ch) for ch in word)


def words(text: str) -> Iterator[Span]:
    """``(start, end)`` of every word of ``text``, in code points (Python string indices)."""
    start = -1
    for i, ch in enumerate(text):
        if _is_word_char(ch):
            if start < 0:
                start = i
        elif start >= 0:
            yield start, i
            start = -1
    if start >= 0:
        yield start, len(text)


def query_terms(q: str) -> list[str]:
    """The words of a search query; 422 if it is too long or has none."""
    if len(q) > MAX_QUERY_CHARS:
        raise Invalid(
            f"q is longer than {MAX_QUERY_CHARS} characters",
            code="query_too_long",
            details={"limit": MAX_QUERY_CHARS, "length": len(q)},
        )
    terms = [q[s:e] for s, e in words(q)]
    terms = [t for t in terms if fold(t)]  # a lone accent is no word
    if not terms:
        raise Invalid("q must contain at least one letter or digit", code="invalid_query")
    return terms


def highlights(text: str, terms: Sequence[str]) -> list[Span]:
    """Where the query matched ``text``: one ``(start, end)`` per matching word, in order.

    Every term matches a whole word except the last, which also matches the start of a word
    (as you type); then only the matched prefix is covered. Offsets are code points (Python
    string indices); the text itself is never changed or marked up.
    """
    folded = [f for f in (fold(t) for t in terms) if f]
    if not folded:
        return []
    prefix = folded[-1]
    whole = set(folded)
    spans: list[Span] = []
    for start, end in words(text):
        pieces = [fold_char(ch) for ch in text[start:end]]
        word = "".join(pieces)
        if word in whole:
            spans.append((start, end))
        elif word.startswith(prefix):
            spans.append((start, _prefix_end(pieces, start, end, len(prefix))))
    return spans


def _prefix_end(pieces: list[str], start: int, end: int, length: int) -> int:
    """The index in the text where the first ``length`` folded characters of a word end,
    extended over marks that fold to nothing (so an accent stays with its letter)."""
    seen = 0
    i = start
    for piece in pieces:
        if seen >= length and piece:
            break
        seen += len(piece)
        i += 1
    return min(i, end)
