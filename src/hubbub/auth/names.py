"""What a name may be, and when two names are the same person.

A username is shown to other people and typed by its owner on other devices, so two spellings
that look alike must not be two accounts: names are NFKC-normalised (a fullwidth ``Alice`` is
``Alice``) and compared case-insensitively (``Alice`` = ``alice``) through :func:`username_key`,
which the store keeps unique. Names people see (usernames, room names) refuse text that hides
or disguises itself: control characters, bidi overrides (which reverse what follows them), and
names made of nothing but invisible characters.
"""

from __future__ import annotations

import unicodedata

USERNAME_MIN = 3
USERNAME_MAX = 32
_USERNAME_PUNCTUATION = frozenset("_.-")
# Explicit embeddings, overrides and isolates (Unicode bidi "formatting characters").
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u180e\u200e\u200f\u00ad\u034f")


def normalise(name: str) -> str:
    return unicodedata.normalize("NFKC", name)


def username_key(name: str) -> str:
    """The identity of a username: ``Alice``, ``alice`` and a fullwidth ``alice`` share a key."""
    return unicodedata.normalize("NFKC", normalise(name).casefold())


def username_problem(name: str) -> str | None:
    """Why ``name`` (already normalised) cannot be a username, or None. Letters and digits of
    any script, and ``_ . -``; 3 to 32 characters."""
    if not USERNAME_MIN <= len(name) <= USERNAME_MAX:
        return f"a username has {USERNAME_MIN} to {USERNAME_MAX} characters"
    if not all(c.isalnum() or c in _USERNAME_PUNCTUATION for c in name):
        return "a username has only letters, digits, '_', '.' and '-'"
    return None


def display_name_problem(text: str) -> str | None:
    """Why ``text`` cannot be shown as a name (a room's, a person's), or None."""
    for c in text:
        if c in _BIDI_CONTROLS:
            return "names cannot contain bidi override or isolate characters"
        if unicodedata.category(c) == "Cc":
            return "names cannot contain control characters"
    if all(c in _INVISIBLE or c.isspace() or unicodedata.category(c) == "Cf" for c in text):
        return "a name needs at least one visible character"
    return None
