"""The events ``stream()`` yields, one class per event name of ``GET /chat/events``.

``cursor`` is the event's ``id:`` (``None`` for live-only events: typing, presence, ...);
pass the last one you handled to ``stream(last_event_id=...)`` to resume in a new process.
An event this client does not know (a newer server, a ``broadcast``) is ``Unknown`` rather
than an error, and so is a known one whose data does not parse."""

from __future__ import annotations

from typing import Any, cast

import msgspec

from hubbub.client.models import Message, Room
from hubbub.client.sse import SSEEvent

__all__ = [
    "Connected",
    "Event",
    "MemberJoined",
    "MemberLeft",
    "MessageDeleted",
    "MessageEdited",
    "NewMessage",
    "Notification",
    "Presence",
    "Reaction",
    "Read",
    "Reset",
    "RoomAdded",
    "RoomCreated",
    "RoomRemoved",
    "RoomUpdated",
    "Typing",
    "Unknown",
    "parse_event",
]


class _Event(msgspec.Struct, frozen=True, kw_only=True):
    cursor: str | None = None


class Connected(_Event, frozen=True, kw_only=True):
    """First event of every connection (also after each automatic reconnect)."""

    user_id: str | None = None
    rooms: list[str] = msgspec.field(default_factory=list)


class NewMessage(_Event, frozen=True, kw_only=True):
    message: Message


class MessageEdited(_Event, frozen=True, kw_only=True):
    message: Message


class MessageDeleted(_Event, frozen=True, kw_only=True):
    message: Message


class Reaction(_Event, frozen=True, kw_only=True):
    message_id: str
    room_id: str
    user_id: str
    reaction: str
    action: str  # "added" | "removed"


class MemberJoined(_Event, frozen=True, kw_only=True):
    room_id: str
    user_id: str
    username: str | None = None


class MemberLeft(_Event, frozen=True, kw_only=True):
    room_id: str
    user_id: str
    username: str | None = None


class RoomAdded(_Event, frozen=True, kw_only=True):
    """You joined, were invited to, or created this room."""

    room: Room


class RoomRemoved(_Event, frozen=True, kw_only=True):
    """You left or were removed: nothing more of this room arrives."""

    room_id: str


class RoomUpdated(_Event, frozen=True, kw_only=True):
    room: Room


class RoomCreated(_Event, frozen=True, kw_only=True):
    """A new public room (live only)."""

    room: Room


class Read(_Event, frozen=True, kw_only=True):
    """Your own read pointer moved (on another device too)."""

    room_id: str
    seq: int


class Presence(_Event, frozen=True, kw_only=True):
    user_id: str
    status: str  # "online" | "away" | "offline"


class Typing(_Event, frozen=True, kw_only=True):
    room_id: str
    user_id: str
    is_typing: bool = True
    username: str | None = None


class Notification(_Event, frozen=True, kw_only=True):
    """Your backend's ``POST /server/users/{id}/notifications``."""

    event: str
    data: Any = None
    created_at: str | None = None


class Reset(_Event, frozen=True, kw_only=True):
    """The cursor was older than the history the server keeps: messages of ``room_id`` before
    ``oldest_seq`` are gone; reload the room's history."""

    room_id: str | None = None
    oldest_seq: int | None = None


class Unknown(_Event, frozen=True, kw_only=True):
    event: str
    data: Any = None


Event = (
    Connected
    | NewMessage
    | MessageEdited
    | MessageDeleted
    | Reaction
    | MemberJoined
    | MemberLeft
    | RoomAdded
    | RoomRemoved
    | RoomUpdated
    | RoomCreated
    | Read
    | Presence
    | Typing
    | Notification
    | Reset
    | Unknown
)

_FLAT: dict[str, type[_Event]] = {
    "connected": Connected,
    "reaction": Reaction,
    "member_joined": MemberJoined,
    "member_left": MemberLeft,
    "room_removed": RoomRemoved,
    "read": Read,
    "presence": Presence,
    "typing": Typing,
    "notification": Notification,
    "reset": Reset,
}
_MESSAGE: dict[str, type[NewMessage | MessageEdited | MessageDeleted]] = {
    "message": NewMessage,
    "message_edited": MessageEdited,
    "message_deleted": MessageDeleted,
}
_ROOM: dict[str, type[RoomAdded | RoomUpdated | RoomCreated]] = {
    "room_added": RoomAdded,
    "room_updated": RoomUpdated,
    "room_created": RoomCreated,
}
_message = msgspec.json.Decoder(Message)
_room = msgspec.json.Decoder(Room)
_any = msgspec.json.Decoder()


def parse_event(sse: SSEEvent) -> Event:
    """The typed event for one SSE event; ``Unknown`` when the name or the data is new."""
    name, cursor = sse.event, sse.id
    try:
        kind = _MESSAGE.get(name)
        if kind is not None:
            return kind(message=_message.decode(sse.data), cursor=cursor)
        room_kind = _ROOM.get(name)
        if room_kind is not None:
            return room_kind(room=_room.decode(sse.data), cursor=cursor)
        flat = _FLAT.get(name)
        if flat is not None:
            fields = _any.decode(sse.data)
            if isinstance(fields, dict):
                fields["cursor"] = cursor
                return cast(Event, msgspec.convert(fields, flat))
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    try:
        data: Any = _any.decode(sse.data)
    except msgspec.DecodeError:
        data = sse.data
    return Unknown(event=name, data=data, cursor=cursor)
