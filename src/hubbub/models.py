"""Plain typed records shared by every layer (no I/O, no framework)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec

MessageType = Literal["text", "file", "system"]
Visibility = Literal["public", "private"]
Role = Literal["admin", "member"]
ClientTimestamp = int | float | str | None

# A seq (or any number a client echoes back) must stay a JSON number every client reads
# exactly: beyond 2^53 it is refused (422), never rounded.
MAX_SEQ = 2**53


def personal_channel(user_id: str) -> str:
    """The channel of one user's own events (room ids cannot contain ``@``)."""
    return "@" + user_id


class FileInfo(msgspec.Struct, frozen=True):
    id: str
    url: str
    name: str
    size: int
    content_type: str


class FileRecord(msgspec.Struct, frozen=True):
    """An uploaded file as the store keeps it: its room decides who may download it."""

    id: str
    room_id: str
    user_id: str
    name: str
    size: int
    content_type: str
    created_at: str


class Message(msgspec.Struct, frozen=True):
    """A chat message. ``seq`` is per room, starts at 1 and grows by exactly 1."""

    # Stored, returned and streamed as is: the field order is the wire order.

    id: str
    room_id: str
    seq: int
    user_id: str
    username: str
    type: MessageType
    # The descriptions are for /openapi.json (``wire.py``); msgspec checks nothing here.
    text: Annotated[
        str, msgspec.Meta(description="Exactly as sent; render as text, never as HTML.")
    ]
    created_at: Annotated[
        str, msgspec.Meta(description="Server time, RFC 3339 UTC with milliseconds.")
    ]
    timestamp: Annotated[
        ClientTimestamp, msgspec.Meta(description="The client's timestamp, echoed unchanged.")
    ] = None
    client_msg_id: str | None = None
    edited_at: str | None = None
    deleted: bool = False
    reactions: dict[str, list[str]] = msgspec.field(default_factory=dict)
    file: FileInfo | None = None


class NewMessage(msgspec.Struct, frozen=True):
    """What a sender asks to store; the store assigns ``id``, ``seq`` and ``created_at``."""

    room_id: str
    user_id: str
    username: str
    text: str
    type: MessageType = "text"
    timestamp: ClientTimestamp = None
    client_msg_id: str | None = None
    file: FileInfo | None = None


class User(msgspec.Struct, frozen=True):
    id: str
    username: str
    created_at: str


class Room(msgspec.Struct, frozen=True):
    id: str
    name: str
    visibility: Visibility
    created_by: str | None
    created_at: str
    last_seq: int = 0


class Member(msgspec.Struct, frozen=True):
    user_id: str
    username: str
    role: Role
    joined_at: str
    presence: Literal["online", "away", "offline"] = "offline"


def utc_now() -> str:
    """RFC 3339 UTC with milliseconds, the one time format on the wire."""
    return format_time(datetime.now(UTC))


def format_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )
