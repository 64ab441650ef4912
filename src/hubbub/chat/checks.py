"""Input rules shared by every route and transport, so a bad value is refused the same way
(same code, same message) wherever it comes in."""

from __future__ import annotations

import unicodedata

from hubbub.errors import Invalid
from hubbub.limits import MAX_CLIENT_MSG_ID, MAX_REACTION_CHARS, MAX_ROOM_NAME, ROOM_ID_RE


def check_text(text: str, limit: int) -> None:
    if not text or text.isspace():
        raise Invalid("message must not be empty or only whitespace", code="empty_message")
    if len(text) > limit:
        raise Invalid(
            f"message is longer than {limit} characters",
            code="message_too_long",
            details={"limit": limit, "length": len(text)},
        )
    if "\x00" in text:
        raise Invalid("message must not contain NUL characters", code="invalid_message")


def check_reaction(reaction: str) -> None:
    """An emoji or a short name: no spaces, no control characters."""
    if not 0 < len(reaction) <= MAX_REACTION_CHARS or any(
        unicodedata.category(ch)[0] in "CZ" and ch not in "\u200d\ufe0f" for ch in reaction
    ):
        raise Invalid(
            f"reaction must be 1-{MAX_REACTION_CHARS} characters without spaces",
            code="invalid_reaction",
        )


def check_room_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_ROOM_NAME:
        raise Invalid(f"name must be 1-{MAX_ROOM_NAME} characters", code="invalid_name")
    return name


def check_room_id(room_id: str) -> None:
    if not ROOM_ID_RE.fullmatch(room_id):
        raise Invalid(
            "room_id must be 1-64 characters of letters, digits and _.:~-", code="invalid_room_id"
        )


def check_client_msg_id(client_msg_id: str | None) -> None:
    if client_msg_id is not None and not 0 < len(client_msg_id) <= MAX_CLIENT_MSG_ID:
        raise Invalid(
            f"client_msg_id must be 1-{MAX_CLIENT_MSG_ID} characters",
            code="invalid_client_msg_id",
        )
