"""Telling the streams: every rule module publishes through here, so a broker failure is
handled one way (logged; what is stored is what counts, streams repair from the store)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from hubbub.broker.base import Broker
from hubbub.changes import Change
from hubbub.encoding import Event
from hubbub.hub import CONTROL
from hubbub.models import Room
from hubbub.presence.base import Presence

log = logging.getLogger("hubbub.chat")


class Publisher:
    def __init__(self, broker: Broker, presence: Presence) -> None:
        self.broker = broker
        self.presence = presence

    async def publish(self, event: Event) -> None:
        try:
            await self.broker.publish(event)
        except Exception as exc:  # stored is what counts: streams repair from the store
            log.warning("publish to room %s failed: %s", event.room_id, exc)

    async def changes(self, changes: Sequence[Change]) -> None:
        """Stored changes, in log order (each is in the store already: a stream that misses
        one here reads it back by its ``rev`` or position)."""
        for c in changes:
            await self.publish(Event.stored(c.room_id, c.name, c.data, c.position, c.rev))
            if c.name == "member_joined" and c.ref is not None and c.rev is not None:
                await self._joined_presence(c.room_id, c.ref)

    async def _joined_presence(self, room_id: str, user_id: str) -> None:
        """Someone who joins while online is announced online in the room (presence is
        announced per room only when it changes, so the room would not hear it otherwise)."""
        try:
            status = (await self.presence.statuses([user_id])).get(user_id, "offline")
        except Exception as exc:
            log.warning("presence of %s not announced: %s", user_id, exc)
            return
        if status != "offline":
            payload = {"user_id": user_id, "status": status}
            await self.publish(Event.named(room_id, "presence", payload))

    async def room_created(self, room: Room) -> None:
        """A new public room, to every ``/chat/events`` and WebSocket client (live only)."""
        if room.visibility == "public":
            await self.publish(Event.named(CONTROL, "room_created", room))

    async def sessions_ended(self, user_id: str, session_ids: list[str]) -> None:
        """End, on every node, each stream opened with one of these sessions (logout, a
        refresh token's reuse, a password change): SSE responses end, WebSockets close 4401."""
        if session_ids:
            payload = {"user_id": user_id, "session_ids": session_ids}
            await self.publish(Event.named(CONTROL, "sessions_ended", payload))
