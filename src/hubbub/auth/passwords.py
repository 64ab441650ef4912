"""argon2id password hashing, run off the event loop (one hash costs tens of milliseconds)."""

from __future__ import annotations

import asyncio

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


# Passwords that guessing tools try first (all at least 8 characters; compared ignoring case).
COMMON_PASSWORDS = frozenset(
    {
        "password",
        "password1",
        "password12",
        "password123",
        "passw0rd",
        "12345678",
        "123456789",
        "1234567890",
        "87654321",
        "11111111",
        "00000000",
        "qwertyui",
        "qwertyuiop",
        "qwerty123",
        "1q2w3e4r",
        "1qaz2wsx",
        "asdfghjkl",
        "iloveyou",
        "iloveyou1",
        "sunshine",
        "princess",
        "football",
        "baseball",
        "superman",
        "trustno1",
        "letmein1",
        "welcome1",
        "abcd1234",
        "abc12345",
        "aa123456",
        "changeme",
        "zaq12wsx",
    }
)
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
