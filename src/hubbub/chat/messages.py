"""What happens to a message after it is sent: reading it back, editing, deleting, reacting,
read receipts and search. (Sending is the writer's: ``writer.py``.)"""

from __future__ import annotations

from hubbub.auth.identity import Identity
from hubbub.chat.checks import check_reaction, check_room_id, check_text
from hubbub.chat.files import FileRules
from hubbub.chat.publish import Publisher
from hubbub.chat.rooms import RoomRules
from hubbub.encoding import Event
from hubbub.errors import Conflict, Forbidden, Invalid, NotFound
from hubbub.fulltext import query_terms
from hubbub.limits import MAX_MESSAGE_CHARS
from hubbub.models import Message
from hubbub.store.base import Store


class MessageRules:
    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        rooms: RoomRules,
        files: FileRules,
        *,
        max_message_chars: int = MAX_MESSAGE_CHARS,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.rooms = rooms
        self.files = files
        self.max_message_chars = max_message_chars

    async def history(
        self,
        who: Identity,
        room_id: str,
        *,
        after: int | None,
        before: int | None,
        limit: int,
    ) -> list[Message]:
        if self.rooms.trust:
            check_room_id(room_id)
            if await self.store.rooms.room(room_id) is None:
                return []
        await self.rooms.readable_room(who, room_id)
        return await self.store.messages.history(room_id, after=after, before=before, limit=limit)

    async def _own_message(self, who: Identity, message_id: str, *, admin_ok: bool) -> Message:
        msg = await self.store.messages.message(message_id)
        if msg is None:
            raise NotFound("message not found", code="message_not_found")
        _, role = await self.rooms.readable_room(who, msg.room_id)
        if msg.user_id != who.user_id and not (admin_ok and role == "admin"):
            raise Forbidden("you can only change your own messages", code="not_message_owner")
        if msg.deleted:
            raise Conflict("the message was deleted", code="message_deleted")
        return msg

    async def edit(self, who: Identity, message_id: str, text: str) -> Message:
        check_text(text, self.max_message_chars)
        await self._own_message(who, message_id, admin_ok=False)
        done = await self.store.messages.edit_message(message_id, text)
        if done is None:
            raise Conflict("the message was deleted", code="message_deleted")
        msg, changes = done
        await self.publisher.changes(changes)
        return msg

    async def delete(self, who: Identity, message_id: str) -> Message:
        original = await self._own_message(who, message_id, admin_ok=True)
        done = await self.store.messages.delete_message(message_id)
        if done is None:
            raise NotFound("message not found", code="message_not_found")
        msg, changes = done
        await self.publisher.changes(changes)
        if original.file is not None:
            await self.files.drop(original.file.id)
        return msg

    async def react(
        self, who: Identity, message_id: str, reaction: str, *, add: bool
    ) -> tuple[Message, bool]:
        check_reaction(reaction)
        msg = await self.store.messages.message(message_id)
        if msg is None:
            raise NotFound("message not found", code="message_not_found")
        await self.rooms.member_of(who, msg.room_id)
        if msg.deleted:
            raise Conflict("the message was deleted", code="message_deleted")
        changes = await self.store.messages.react(message_id, who.user_id, reaction, add)
        await self.publisher.changes(changes)
        fresh = await self.store.messages.message(message_id)
        return (fresh or msg), bool(changes)

    async def mark_read(self, who: Identity, room_id: str, seq: int) -> tuple[int, int]:
        """Move my read pointer forward; returns (pointer, unread). Never moves backwards."""
        room = await self.rooms.member_of(who, room_id)
        if seq > room.last_seq:
            raise Invalid(
                f"seq {seq} is past the newest message ({room.last_seq})",
                code="invalid_seq",
                details={"last_seq": room.last_seq},
            )
        pointer, changes = await self.store.messages.mark_read(room_id, who.user_id, seq)
        if changes:
            # The room sees the receipt live; the reader's user-level streams get the stored
            # change on their personal channel (resumable), so the room's copy skips those.
            payload = {"room_id": room_id, "user_id": who.user_id, "seq": pointer}
            receipt = Event.named(room_id, "read", payload)
            receipt.exclude_user_streams = who.user_id
            await self.publisher.publish(receipt)
            await self.publisher.changes(changes)
        return pointer, max(0, room.last_seq - pointer)

    async def search(
        self,
        who: Identity,
        q: str,
        *,
        room_id: str | None = None,
        limit: int = 20,
        before: str | None = None,
    ) -> tuple[list[tuple[Message, list[tuple[int, int]]]], str | None]:
        """Full-text search over what ``who`` may read: public rooms and their own rooms, or
        just ``room_id`` (a private room they are not in is 404, as everywhere). Deleted
        messages are never found. Returns the hits with highlights and the next cursor."""
        terms = query_terms(q)
        if not 1 <= limit <= 100:
            raise Invalid("limit must be 1-100", code="invalid_limit")
        if room_id is not None:
            await self.rooms.readable_room(who, room_id)
        return await self.store.search.find(
            who.user_id, terms, room_id=room_id, limit=limit, cursor=before
        )
