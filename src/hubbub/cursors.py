"""``/chat/events`` cursors that say nothing: stream positions under a keyed permutation.

A stream position is one counter across every room, so a plain position in a cursor is a
side channel: between two events of my rooms the gap counts everything that happened in
rooms I cannot read (and when). The cursor is therefore ``g`` + 16 hex digits of the position
under a 64-bit block permutation keyed by the server's secret — a four-round Feistel network
whose round function is keyed BLAKE2b. Equal positions give equal cursors on every node that
shares the secret (so a client may resume on any node), and nothing about the order or the
distance of two positions can be read from their cursors.

Positions are at most 2**53, so a decoded value above it is refused: a cursor made up or
damaged (or issued under another secret) is refused with probability 1 - 2**-11, instead of
silently replaying from somewhere else. Cursors of the older form, ``g`` + decimal digits, are
still read (a client that held one across the upgrade resumes without a gap); they reveal
nothing a caller could not already guess, since a replay only ever returns the caller's own
rooms.
"""

from __future__ import annotations

import hashlib

PREFIX = "g"
_LIMIT = 2**53 + 1  # positions go up to MAX_SEQ (2**53) inclusive
_MASK32 = 0xFFFFFFFF
_ROUNDS = 4
_HEX = frozenset("0123456789abcdef")


class CursorCipher:
    __slots__ = ("_rounds",)

    def __init__(self, secret: str) -> None:
        key = hashlib.blake2b(secret.encode(), person=b"hubbub-cursor").digest()
        self._rounds = [
            hashlib.blake2b(key=key, digest_size=4, person=b"round-%d" % i) for i in range(_ROUNDS)
        ]

    def _f(self, i: int, half: int) -> int:
        h = self._rounds[i].copy()
        h.update(half.to_bytes(4, "big"))
        return int.from_bytes(h.digest(), "big")

    def encode(self, position: int) -> str:
        left, right = position >> 32, position & _MASK32
        for i in range(_ROUNDS):
            left, right = right, left ^ self._f(i, right)
        return f"{PREFIX}{(left << 32) | right:016x}"

    def decode(self, value: str) -> int | None:
        """The position in a cursor this server issued; ``None`` if it is not one."""
        if not value.startswith(PREFIX):
            return None
        body = value[1:]
        if len(body) == 16 and _HEX.issuperset(body):
            block = int(body, 16)
            left, right = block >> 32, block & _MASK32
            for i in reversed(range(_ROUNDS)):
                left, right = right ^ self._f(i, left), left
            position = (left << 32) | right
            return position if position < _LIMIT else None
        # The older, plain form (ASCII digits only: str.isdigit also says yes to "²").
        if 0 < len(body) <= 15 and body.isascii() and body.isdigit():
            return int(body)
        return None
