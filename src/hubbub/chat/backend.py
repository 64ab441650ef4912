"""What the application's own backend may do (the server API, ``api/server.py``): speak in a
room as a user or as ``system``, notify one user, broadcast a live event to a room, and
provision users and memberships from its own records.

The backend is trusted with identity (it names the user), not with bypassing the rules every
change follows: its messages go through the same writer (durable before the 201, the same
``client_msg_id`` idempotency), its notifications and memberships through the same change log
(so streams replay them on resume), and a removal revokes at once, as a room admin's does.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from hubbub.auth.identity import USER_ID_RE, Authenticator
from hubbub.auth.names import normalise, username_problem
from hubbub.changes import Change
from hubbub.chat.checks import check_client_msg_id, check_room_id, check_text
from hubbub.chat.publish import Publisher
from hubbub.chat.writer import Sent, Writer
from hubbub.encoding import Event, line_safe_json
from hubbub.errors import Conflict, Invalid, NotFound
from hubbub.models import Member, NewMessage, User
from hubbub.store.base import AppendRequest, Store

# A broadcast's event name: what an EventSource listener can name, and never one of Hubbub's
# own, so a client cannot mistake an application event for a stored change or a control frame.
BROADCAST_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
RESERVED_EVENTS = frozenset(
    {
        "message",
        "connected",
        "typing",
        "presence",
        "reaction",
        "message_edited",
        "message_deleted",
        "member_joined",
        "member_left",
        "read",
        "room_updated",
        "room_added",
        "room_removed",
        "room_created",
        "notification",
        "reset",
        "ack",
        "subscribed",
        "unsubscribed",
        "error",
        "ping",
        "pong",
        "sessions_ended",
    }
)
MAX_NOTIFICATION_EVENT = 64
SYSTEM_USER = "system"

# ``GET /api/sse`` (seed 000's notification stream) listens to one channel per user that is
# neither a room (room ids have no ``!``) nor a personal channel (``@user``).
_NOTICES = "!notices:"


def notices_channel(user_id: str) -> str:
    return _NOTICES + user_id


def notice_event(user_id: str, change: Change, data: Any) -> Event:
    """The ``/api/sse`` frame of a notification: ``id: <position>`` and the application's
    ``data`` alone, with no ``event:`` line (the seed listens for ``message``)."""
    return Event(notices_channel(user_id), "message", line_safe_json(data), seq=change.position)


def check_user_id(user_id: str) -> None:
    if not USER_ID_RE.fullmatch(user_id):
        raise Invalid(
            "user_id must be 1-64 characters of letters, digits and _.@:~-", code="invalid_user_id"
        )


class BackendRules:
    def __init__(
        self,
        store: Store,
        writer: Writer,
        publisher: Publisher,
        auth: Authenticator,
        *,
        trust: bool,
    ) -> None:
        self.store = store
        self.writer = writer
        self.publisher = publisher
        self.auth = auth
        self.trust = trust

    async def _user(self, user_id: str) -> User | None:
        """The user ``user_id``; in trust mode created on first use, as everywhere."""
        check_user_id(user_id)
        user = await self.store.accounts.user_by_id(user_id)
        if user is None and self.trust:
            await self.store.accounts.ensure_user(user_id)
            user = await self.store.accounts.user_by_id(user_id)
        return user

    async def _existing_user(self, user_id: str) -> User:
        user = await self._user(user_id)
        if user is None:
            raise NotFound(f"user {user_id!r} not found", code="user_not_found")
        return user

    async def post(
        self, room_id: str, text: str, *, user_id: str | None, client_msg_id: str | None
    ) -> Sent:
        """A message as ``user_id`` (who must be a member, except in trust mode, where the
        room and the membership come into being on first use) or, without one, a ``system``
        message, which needs no membership."""
        check_room_id(room_id)
        check_text(text, self.writer.max_message_chars)
        check_client_msg_id(client_msg_id)
        if user_id is None:
            message = NewMessage(
                room_id=room_id,
                user_id=SYSTEM_USER,
                username=SYSTEM_USER,
                text=text,
                type="system",
                client_msg_id=client_msg_id,
            )
            request = AppendRequest(message, create_room=self.trust, system=True)
        else:
            user = await self._existing_user(user_id)
            message = NewMessage(
                room_id=room_id,
                user_id=user.id,
                username=user.username,
                text=text,
                client_msg_id=client_msg_id,
            )
            request = AppendRequest(
                message, create_room=self.trust, join_public=self.trust, create_user=self.trust
            )
        return await self.writer.append_request(request)

    async def notify(self, user_id: str, event: str, data: Any) -> Change:
        """Stored on the user's personal channel, then delivered to their ``/chat/events``
        and WebSocket connections (``notification``) and ``/api/sse`` streams."""
        if not 0 < len(event) <= MAX_NOTIFICATION_EVENT or not event.isprintable():
            raise Invalid(
                f"event must be 1-{MAX_NOTIFICATION_EVENT} printable characters",
                code="invalid_event",
            )
        if not self.trust:
            await self._existing_user(user_id)
        else:
            check_user_id(user_id)
        change = await self.store.log.notify(user_id, event, data)
        await self.publisher.changes([change])
        await self.publisher.publish(notice_event(user_id, change, data))
        return change

    async def broadcast(self, room_id: str, event: str, data: Any) -> None:
        """A live-only custom event to everyone subscribed to the room now."""
        check_room_id(room_id)
        if not BROADCAST_NAME.fullmatch(event) or event in RESERVED_EVENTS:
            raise Invalid(
                "event must match [a-z][a-z0-9_.-]{0,63} and not be one of Hubbub's own "
                f"({', '.join(sorted(RESERVED_EVENTS))})",
                code="invalid_event",
            )
        if await self.store.rooms.room(room_id) is None:
            raise NotFound(f"room {room_id!r} not found", code="room_not_found")
        await self.publisher.publish(Event.named(room_id, event, data))

    async def provision_user(self, user_id: str, username: str) -> tuple[User, bool]:
        check_user_id(user_id)
        name = normalise(username)
        problem = username_problem(name)
        if problem is not None:
            raise Invalid(problem, code="invalid_username")
        try:
            user, created = await self.store.accounts.provision_user(user_id, name)
        except sa.exc.IntegrityError:
            raise Conflict(f"username {name!r} is taken", code="username_taken") from None
        self.auth.forget_user(user_id)
        self.auth.forget_user(name)
        return user, created

    async def delete_user(self, user_id: str) -> None:
        """Out of every room first (each ``member_left`` logged and streamed, their streams
        of it ending at once), then the account, and every stream of its sessions ends."""
        check_user_id(user_id)
        if await self.store.accounts.user_by_id(user_id) is None:
            raise NotFound(f"user {user_id!r} not found", code="user_not_found")
        for room_id in await self.store.rooms.room_ids_of(user_id):
            await self.publisher.changes(await self.store.rooms.remove_member(room_id, user_id))
        ended = await self.store.accounts.delete_user(user_id)
        if ended is None:
            raise NotFound(f"user {user_id!r} not found", code="user_not_found")
        self.auth.forget_user(user_id)
        if ended:
            self.auth.forget_sessions(ended)
            await self.publisher.sessions_ended(user_id, ended)

    async def add_member(self, room_id: str, user_id: str) -> tuple[Member, bool]:
        check_room_id(room_id)
        if await self.store.rooms.room(room_id) is None:
            raise NotFound(f"room {room_id!r} not found", code="room_not_found")
        user = await self._existing_user(user_id)
        changes = await self.store.rooms.add_member(room_id, user.id)
        await self.publisher.changes(changes)
        for m in await self.store.rooms.members(room_id):
            if m.user_id == user.id:
                return m, bool(changes)
        raise NotFound(f"user {user_id!r} not found", code="user_not_found")

    async def remove_member(self, room_id: str, user_id: str) -> bool:
        """Removal revokes at once: the member's streams of the room stop (``member_left``)."""
        check_room_id(room_id)
        check_user_id(user_id)
        if await self.store.rooms.room(room_id) is None:
            raise NotFound(f"room {room_id!r} not found", code="room_not_found")
        changes = await self.store.rooms.remove_member(room_id, user_id)
        await self.publisher.changes(changes)
        return bool(changes)
