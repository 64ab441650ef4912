"""argon2id password hashing, run off the event loop (one hash costs tens of milliseconds)."""

from __future__ import annotations

import asyncio
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified when the user does not exist, so a login takes as long either way.
_DUMMY = _hasher.hash("hubbub-timing-equaliser")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def _common_passwords() -> frozenset[str]:
    """The list shipped with the package (``common-passwords.txt``), folded for comparison."""
    text = resources.files("hubbub.auth").joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().casefold() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


COMMON_PASSWORDS = _common_passwords()
MIN_PASSWORD_CHARS = 8


def password_weakness(password: str, username: str) -> str | None:
    """Why ``password`` is too weak for ``username`` (a sentence), or ``None`` when it is fine."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"the password must be at least {MIN_PASSWORD_CHARS} characters"
    folded = password.casefold()
    if folded == username.casefold():
        return "the password must not be the username"
    if folded in COMMON_PASSWORDS:
        return "the password is one of the most common ones; choose another"
    return None
