"""Rooms and who may see and change them.

The access rules live here and nowhere else (``readable_room``, ``member_of``, ``open_room``):
every other rule module, route and transport asks them, so "a private room is 404 to
non-members" holds everywhere by construction.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from hubbub.auth.identity import Identity
from hubbub.batch import TickBatch
from hubbub.changes import Change
from hubbub.chat.checks import check_room_id, check_room_name
from hubbub.chat.publish import Publisher
from hubbub.errors import Conflict, Forbidden, HubbubError, Invalid, NotFound
from hubbub.models import Member, Role, Room, Visibility
from hubbub.presence.base import Presence
from hubbub.store.base import RoomView, Store


class RoomRules:
    def __init__(
        self, store: Store, publisher: Publisher, presence: Presence, *, trust: bool
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.presence = presence
        self.trust = trust
        # Connect storms: each stream's access check, and trust mode's first use, batched
        # with the others of the moment (one read, one write transaction; ``hubbub.batch``).
        self._access: TickBatch[tuple[str, str], tuple[Room, Role | None]] = TickBatch(
            store.lookups.room_access
        )
        self._entrance: TickBatch[tuple[str, str, str, bool], tuple[Room, list[Change]]] = (
            TickBatch(self._enter_many, max_keys=1000)
        )

    # access ------------------------------------------------------------------------------

    async def readable_room(self, who: Identity, room_id: str) -> tuple[Room, Role | None]:
        """The room if ``who`` may read it; a private room is 404 to non-members."""
        check_room_id(room_id)
        found = await self._access.get((room_id, who.user_id))
        if found is None or (found[0].visibility == "private" and found[1] is None):
            raise NotFound(f"room {room_id!r} not found", code="room_not_found")
        return found

    async def open_room(self, who: Identity, room_id: str) -> Room:
        """Before a stream: in trust mode the room is created and joined on first use."""
        if self.trust:
            check_room_id(room_id)
            found = await self._access.get((room_id, who.user_id))
            if found is not None and found[1] is not None:
                return found[0]  # a member already: one read, the common case
            entered = await self._entrance.get((room_id, who.user_id, who.username, found is None))
            assert entered is not None
            room, changes = entered
            if changes:
                return room  # just joined
        room, _ = await self.readable_room(who, room_id)
        return room

    async def _enter_many(
        self, items: Sequence[tuple[str, str, str, bool]]
    ) -> dict[tuple[str, str, str, bool], tuple[Room, list[Change]]]:
        """Trust mode's first uses of the moment in one transaction, published after the
        commit in log order (a room announced as created before its first join)."""
        done = await self.store.rooms.enter_rooms([(r, u, name) for r, u, name, _ in items])
        out = dict(zip(items, done, strict=True))
        for (_, user_id, _, was_missing), (room, changes) in out.items():
            if was_missing and room.created_by == user_id and changes:
                await self.publisher.room_created(room)
            await self.publisher.changes(changes)
        return out

    async def member_of(self, who: Identity, room_id: str) -> Room:
        """The room if ``who`` is a member (a private room is 404, a public one 403). In trust
        mode every route that names a room is first use, as sending is: created and joined."""
        if self.trust:
            await self.open_room(who, room_id)
        room, role = await self.readable_room(who, room_id)
        if role is None:
            raise Forbidden(f"you are not a member of room {room_id!r}", code="not_a_member")
        return room

    # rooms -------------------------------------------------------------------------------

    async def create_room(
        self, who: Identity, name: str, visibility: Visibility, room_id: str | None
    ) -> Room:
        name = check_room_name(name)
        if room_id is not None:
            check_room_id(room_id)
            if await self.store.rooms.room(room_id) is not None:
                raise Conflict(f"room {room_id!r} already exists", code="room_exists")
        try:
            room, changes = await self.store.rooms.create_room(
                name, visibility, who.user_id, room_id, who.username
            )
            await self.publisher.room_created(room)
            await self.publisher.changes(changes)
            return room
        except HubbubError:
            raise
        except Exception as exc:
            if room_id is not None and await self.store.rooms.room(room_id) is not None:
                raise Conflict(f"room {room_id!r} already exists", code="room_exists") from exc
            raise

    async def rooms(self, who: Identity) -> list[RoomView]:
        return await self.store.rooms.rooms_for(who.user_id)

    async def update_room(
        self, who: Identity, room_id: str, *, name: str | None, visibility: Visibility | None
    ) -> Room:
        """A room admin renames the room or changes its visibility (``room_updated``)."""
        _, role = await self.readable_room(who, room_id)
        if role != "admin":
            raise Forbidden("only room admins can change the room", code="not_room_admin")
        if name is not None:
            name = check_room_name(name)
        done = await self.store.rooms.update_room(room_id, name=name, visibility=visibility)
        if done is None:
            raise NotFound(f"room {room_id!r} not found", code="room_not_found")
        room, changes = done
        await self.publisher.changes(changes)
        return room

    # membership --------------------------------------------------------------------------

    async def join(self, who: Identity, room_id: str) -> tuple[Room, Role | None, bool]:
        """The room, the caller's role in it now, and whether this call joined."""
        room, joined = await self._join(who, room_id)
        role = await self.store.rooms.membership(room_id, who.user_id)
        return room, role, joined

    async def _join(self, who: Identity, room_id: str) -> tuple[Room, bool]:
        if self.trust:
            check_room_id(room_id)
            if await self.store.rooms.membership(room_id, who.user_id) is None:
                await self.open_room(who, room_id)
                room, _ = await self.readable_room(who, room_id)
                return room, True
        room, role = await self.readable_room(who, room_id)
        if role is not None:
            return room, False
        changes = await self.store.rooms.add_member(room_id, who.user_id)
        await self.publisher.changes(changes)
        return room, bool(changes)

    async def leave(self, who: Identity, room_id: str) -> bool:
        await self.readable_room(who, room_id)
        changes = await self.store.rooms.remove_member(room_id, who.user_id)
        await self.publisher.changes(changes)
        return bool(changes)

    async def remove_member(self, who: Identity, room_id: str, user_id: str) -> bool:
        """A room admin removes a member (or anyone removes themselves): ``member_left``, and
        the member's streams of the room stop at once."""
        _, role = await self.readable_room(who, room_id)
        if user_id != who.user_id and role != "admin":
            raise Forbidden("only room admins can remove members", code="not_room_admin")
        changes = await self.store.rooms.remove_member(room_id, user_id)
        if not changes and await self.store.accounts.user_by_id(user_id) is None:
            raise NotFound("user not found", code="user_not_found")
        await self.publisher.changes(changes)
        return bool(changes)

    async def members(self, who: Identity, room_id: str) -> list[Member]:
        """Members with their presence (from the Presence backend, never the database)."""
        await self.readable_room(who, room_id)
        found = await self.store.rooms.members(room_id)
        status = await self.presence.statuses(m.user_id for m in found)
        return [msgspec.structs.replace(m, presence=status[m.user_id]) for m in found]

    async def invite(
        self, who: Identity, room_id: str, *, user_id: str | None, username: str | None
    ) -> tuple[Member, bool]:
        _, role = await self.readable_room(who, room_id)
        if role is None:
            raise Forbidden("only members can add members", code="not_a_member")
        if user_id is not None:
            target = await self.store.accounts.user_by_id(user_id)
        elif username is not None:
            found = await self.store.accounts.user_by_name(username)
            target = found[0] if found else None
        else:
            raise Invalid("give user_id or username", code="missing_user")
        if target is None:
            raise NotFound("user not found", code="user_not_found")
        changes = await self.store.rooms.add_member(room_id, target.id)
        added = bool(changes)
        await self.publisher.changes(changes)
        for m in await self.store.rooms.members(room_id):
            if m.user_id == target.id:
                return m, added
        raise NotFound("user not found", code="user_not_found")
