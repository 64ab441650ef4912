"""What the server returns, as typed values. Unknown fields are ignored, so a newer server
never breaks an older client."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "FileInfo",
    "Member",
    "Message",
    "Notification",
    "Room",
    "SearchHit",
    "SearchPage",
    "User",
]


class FileInfo(msgspec.Struct, frozen=True):
    id: str
    url: str
    name: str
    size: int
    content_type: str


class Message(msgspec.Struct, frozen=True):
    id: str
    room_id: str
    seq: int
    user_id: str
    username: str
    type: str
    text: str
    created_at: str
    timestamp: Any = None
    client_msg_id: str | None = None
    edited_at: str | None = None
    deleted: bool = False
    reactions: dict[str, list[str]] = msgspec.field(default_factory=dict)
    file: FileInfo | None = None


class Room(msgspec.Struct, frozen=True):
    id: str
    name: str
    visibility: str
    created_by: str | None = None
    created_at: str | None = None
    last_seq: int = 0
    member: bool | None = None
    role: str | None = None
    unread: int | None = None
    last_message: Message | None = None


class Member(msgspec.Struct, frozen=True):
    user_id: str
    username: str | None = None
    role: str | None = None
    joined_at: str | None = None
    presence: str = "offline"


class User(msgspec.Struct, frozen=True):
    id: str
    username: str
    created_at: str | None = None


class Notification(msgspec.Struct, frozen=True):
    id: str
    event: str
    data: Any
    created_at: str


class SearchHit(Message, frozen=True):
    highlights: list[list[int]] = msgspec.field(default_factory=list)


class SearchPage(msgspec.Struct, frozen=True):
    results: list[SearchHit]
    next_before: str | None = None
