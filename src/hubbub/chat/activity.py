"""Typing and presence: never stored, announced to rooms only when they change.

Both backends (this process, or Redis when nodes share a broker) call back here on a change,
and this module turns the change into the room events."""

from __future__ import annotations

import logging
from typing import Literal

from hubbub.auth.identity import Identity
from hubbub.batch import TickBatch
from hubbub.chat.publish import Publisher
from hubbub.chat.rooms import RoomRules
from hubbub.encoding import Event
from hubbub.presence.base import Presence, Status
from hubbub.store.base import Store
from hubbub.typing.base import Typing

log = logging.getLogger("hubbub.chat")


class Activity:
    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        rooms: RoomRules,
        *,
        presence: Presence,
        typing: Typing,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.rooms = rooms
        self.presence = presence
        self.typing = typing
        # Presence changes of many users at once (a connect storm) read their rooms at once.
        self._rooms_of: TickBatch[str, list[str]] = TickBatch(store.lookups.room_ids_of)

    async def start(self) -> None:
        await self.typing.start(self._typing_changed)
        await self.presence.start(self._presence_changed)

    async def close(self) -> None:
        await self.typing.close()
        await self.presence.close()

    async def set_typing(self, who: Identity, room_id: str, is_typing: bool) -> bool:
        await self.rooms.member_of(who, room_id)
        return await self.typing.set(room_id, who.user_id, who.username, is_typing)

    async def _typing_changed(
        self, room_id: str, user_id: str, username: str, is_typing: bool
    ) -> None:
        payload = {
            "user_id": user_id,
            "room_id": room_id,
            "is_typing": is_typing,
            "username": username,
        }
        await self.publisher.publish(Event.named(room_id, "typing", payload, exclude=user_id))

    async def set_presence(self, who: Identity, status: Literal["online", "away"]) -> Status:
        return await self.presence.set_status(who.user_id, status)

    async def _presence_changed(self, user_id: str, status: Status) -> None:
        """Tell every room the user is in (each room's listeners share the user's rooms)."""
        try:
            room_ids = await self._rooms_of.get(user_id) or []
        except Exception as exc:
            log.warning("presence of %s not published: %s", user_id, exc)
            return
        for room_id in room_ids:
            await self.publisher.publish(
                Event.named(room_id, "presence", {"user_id": user_id, "status": status})
            )
