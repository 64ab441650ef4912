"""Hubbub's Python SDK: ``AsyncHubbub`` / ``Hubbub`` for users, ``AsyncServerClient`` /
``ServerClient`` for your backend (server API), typed events from ``stream()``.

Imports only httpx and msgspec, never the server's dependencies, so an application can use it
without installing what ``hubbub serve`` needs to run. See ``docs/sdk.md``."""

from hubbub.client.aio import DEFAULT_URL, AsyncHubbub, Tokens
from hubbub.client.errors import AuthError, HubbubError
from hubbub.client.events import (
    Connected,
    Event,
    MemberJoined,
    MemberLeft,
    MessageDeleted,
    MessageEdited,
    NewMessage,
    Notification,
    Presence,
    Reaction,
    Read,
    Reset,
    RoomAdded,
    RoomCreated,
    RoomRemoved,
    RoomUpdated,
    Typing,
    Unknown,
    parse_event,
)
from hubbub.client.models import FileInfo, Member, Message, Room, SearchHit, SearchPage, User
from hubbub.client.server_api import AsyncServerClient
from hubbub.client.sse import SSEError, SSEEvent, SSEParser
from hubbub.client.sync import Hubbub, ServerClient

__all__ = [
    "DEFAULT_URL",
    "AsyncHubbub",
    "AsyncServerClient",
    "AuthError",
    "Connected",
    "Event",
    "FileInfo",
    "Hubbub",
    "HubbubError",
    "Member",
    "MemberJoined",
    "MemberLeft",
    "Message",
    "MessageDeleted",
    "MessageEdited",
    "NewMessage",
    "Notification",
    "Presence",
    "Reaction",
    "Read",
    "Reset",
    "Room",
    "RoomAdded",
    "RoomCreated",
    "RoomRemoved",
    "RoomUpdated",
    "SSEError",
    "SSEEvent",
    "SSEParser",
    "SearchHit",
    "SearchPage",
    "ServerClient",
    "Tokens",
    "Typing",
    "Unknown",
    "User",
    "parse_event",
]
