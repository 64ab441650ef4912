"""The ``Hubbub-Signature`` header: pure functions, so receivers (and our tests) check a
delivery exactly as it was signed.

``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``. The timestamp is signed with
the body so a captured delivery cannot be replayed later than the receiver's tolerance."""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Hubbub-Signature"


def signature(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def sign(secret: str, body: bytes, now: float | None = None) -> str:
    """The header value for ``body`` sent now (each attempt is signed afresh)."""
    return signature(secret, body, int(time.time() if now is None else now))


def verify(
    secret: str, body: bytes, header: str, *, tolerance: float = 300, now: float | None = None
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of now.
    Several ``v1`` values are accepted (one matching is enough), so a sender may sign with an
    old and a new secret while they rotate."""
    stamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            try:
                stamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            macs.append(value)
    if stamp is None or not macs:
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance:
        return False
    expected = signature(secret, body, stamp).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, mac) for mac in macs)
