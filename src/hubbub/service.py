"""ChatService: the rules of chat, over a Store and a Broker, with no HTTP in sight.

Sends go through one writer task that takes whatever has queued up (up to ``write_batch_max``)
and appends it in one transaction — group commit, so many concurrent sends cost one durable
commit — then publishes the new messages in ``seq`` order and only then answers the senders.
A 201 therefore always means "on disk"; a failed commit answers every sender of the batch with
503 and stores nothing.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from hubbub.auth.identity import Identity
from hubbub.broker.base import Broker
from hubbub.changes import Change
from hubbub.encoding import Event
from hubbub.errors import Conflict, Forbidden, HubbubError, Invalid, NotFound, Unavailable
from hubbub.files.base import FileStore
from hubbub.fulltext import query_terms
from hubbub.hub import CONTROL
from hubbub.limits import (
    MAX_CLIENT_MSG_ID,
    MAX_MESSAGE_CHARS,
    MAX_REACTION_CHARS,
    MAX_ROOM_NAME,
    ROOM_ID_RE,
)
from hubbub.models import (
    ClientTimestamp,
    FileInfo,
    FileRecord,
    Member,
    Message,
    NewMessage,
    Role,
    Room,
    Visibility,
    utc_now,
)
from hubbub.presence.base import Presence, Status
from hubbub.presence.memory import MemoryPresence
from hubbub.store.base import AppendOutcome, AppendRequest, AppendResult, RoomView, Store
from hubbub.typing.base import Typing
from hubbub.typing.memory import MemoryTypingTracker

log = logging.getLogger("hubbub.service")


@dataclass(slots=True)
class Sent:
    message: Message
    event: Event
    created: bool


@dataclass(slots=True)
class _Job:
    request: AppendRequest
    future: asyncio.Future[tuple[AppendResult, Event | None]]


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


class ChatService:
    def __init__(
        self,
        store: Store,
        broker: Broker,
        *,
        trust: bool,
        max_message_chars: int = MAX_MESSAGE_CHARS,
        write_batch_max: int = 256,
        on_stored: Callable[[int], None] | None = None,
        presence: Presence | None = None,
        typing: Typing | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.presence: Presence = presence or MemoryPresence()
        self.typing: Typing = typing or MemoryTypingTracker()
        self.trust = trust
        self.max_message_chars = max_message_chars
        self._batch_max = write_batch_max
        # A store that stops answering must not hold every sender: they get 503 and retry
        # (with client_msg_id, a commit that landed after all is answered, not duplicated).
        self.commit_timeout = 5.0
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._on_stored = on_stored

    async def start(self) -> None:
        await self.presence.start(self._presence_changed)
        await self.typing.start(self._typing_changed)
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def close(self) -> None:
        """Finish every queued send, then stop the writer."""
        await self.typing.close()
        await self.presence.close()
        if self._writer is not None:
            await self._queue.put(None)
            await self._writer
            self._writer = None

    # sending -----------------------------------------------------------------------------

    async def send(
        self,
        who: Identity,
        room_id: str,
        text: str,
        *,
        timestamp: ClientTimestamp = None,
        client_msg_id: str | None = None,
    ) -> Sent:
        check_room_id(room_id)
        check_text(text, self.max_message_chars)
        if client_msg_id is not None and not 0 < len(client_msg_id) <= MAX_CLIENT_MSG_ID:
            raise Invalid(
                f"client_msg_id must be 1-{MAX_CLIENT_MSG_ID} characters",
                code="invalid_client_msg_id",
            )
        if isinstance(timestamp, str) and len(timestamp) > 64:
            raise Invalid("timestamp must be a number or a short string", code="invalid_timestamp")
        sent = await self._append(
            NewMessage(
                room_id=room_id,
                user_id=who.user_id,
                username=who.username,
                text=text,
                timestamp=timestamp,
                client_msg_id=client_msg_id,
            )
        )
        if self.typing.active(room_id, who.user_id):  # sending ends the typing indicator
            try:
                await self.typing.set(room_id, who.user_id, who.username, False)
            except Exception as exc:  # the message is stored: its 201 must stand
                log.warning("typing of %s not ended: %s", who.user_id, exc)
        return sent

    async def _append(self, message: NewMessage) -> Sent:
        """Queue for the writer (trust mode: room, membership and user on first use) and wait
        for the commit."""
        if self._writer is None or self._writer.done():
            raise Unavailable("the server is shutting down", code="shutting_down")
        request = AppendRequest(
            message, create_room=self.trust, join_public=self.trust, create_user=self.trust
        )
        future: asyncio.Future[tuple[AppendResult, Event | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.put_nowait(_Job(request, future))
        result, event = await future
        return _sent(result, event, message.room_id)

    async def _write_loop(self) -> None:
        queue = self._queue
        stopping = False
        while not stopping:
            job = await queue.get()
            if job is None:
                break
            jobs = [job]
            while len(jobs) < self._batch_max and not queue.empty():
                nxt = queue.get_nowait()
                if nxt is None:
                    stopping = True
                    break
                jobs.append(nxt)
            await self._commit(jobs)

    async def _commit(self, jobs: list[_Job]) -> None:
        try:
            results = await asyncio.wait_for(
                self.store.messages.append_batch([j.request for j in jobs]), self.commit_timeout
            )
        except Exception as exc:
            log.error("append of %d messages failed: %s", len(jobs), exc)
            error = Unavailable(
                "the message store is unavailable; nothing was stored, try again",
                code="store_unavailable",
            )
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(error)
            return
        events: list[Event | None] = []
        for result in results:
            event = None
            if result.message is not None:
                event = Event.message(result.message, result.position or None, result.rev or None)
            events.append(event)
            if result.room_created:
                added = next((c for c in result.changes if c.name == "room_added"), None)
                if added is not None:  # its data is the new room (trust mode: public)
                    await self._publish(Event(CONTROL, "room_created", added.data))
            await self._publish_changes(result.changes)
            if result.outcome is AppendOutcome.CREATED and event is not None:
                await self._publish(event)
        created = sum(1 for r in results if r.outcome is AppendOutcome.CREATED)
        if created and self._on_stored is not None:
            self._on_stored(created)
        for job, result, event in zip(jobs, results, events, strict=True):
            if not job.future.done():
                job.future.set_result((result, event))

    async def _publish(self, event: Event) -> None:
        try:
            await self.broker.publish(event)
        except Exception as exc:  # stored is what counts: streams repair from the store
            log.warning("publish to room %s failed: %s", event.room_id, exc)

    async def _publish_changes(self, changes: Sequence[Change]) -> None:
        """Stored changes, in log order (each is in the store already: a stream that misses
        one here reads it back by its ``rev`` or position)."""
        for c in changes:
            await self._publish(Event.stored(c.room_id, c.name, c.data, c.position, c.rev))
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
            await self._publish(Event.named(room_id, "presence", payload))

    async def _announce_room(self, room: Room) -> None:
        """A new public room, to every ``/chat/events`` and WebSocket client (live only)."""
        if room.visibility == "public":
            await self._publish(Event.named(CONTROL, "room_created", room))

    async def sessions_ended(self, user_id: str, session_ids: list[str]) -> None:
        """End, on every node, each stream opened with one of these sessions (logout, a
        refresh token's reuse, a password change): SSE responses end, WebSockets close 4401."""
        if session_ids:
            payload = {"user_id": user_id, "session_ids": session_ids}
            await self._publish(Event.named(CONTROL, "sessions_ended", payload))

    # reading -----------------------------------------------------------------------------

    async def readable_room(self, who: Identity, room_id: str) -> tuple[Room, Role | None]:
        """The room if ``who`` may read it; a private room is 404 to non-members."""
        check_room_id(room_id)
        found = await self.store.rooms.room_for(room_id, who.user_id)
        if found is None or (found[0].visibility == "private" and found[1] is None):
            raise NotFound(f"room {room_id!r} not found", code="room_not_found")
        return found

    async def open_room(self, who: Identity, room_id: str) -> Room:
        """Before a stream: in trust mode the room is created and joined on first use."""
        if self.trust:
            check_room_id(room_id)
            found = await self.store.rooms.room_for(room_id, who.user_id)
            if found is not None and found[1] is not None:
                return found[0]  # a member already: one read, the common case
            room, changes = await self.store.rooms.enter_room(room_id, who.user_id, who.username)
            if found is None and room.created_by == who.user_id and changes:
                await self._announce_room(room)
            await self._publish_changes(changes)
            if changes:
                return room  # just joined
        room, _ = await self.readable_room(who, room_id)
        return room

    async def history(
        self,
        who: Identity,
        room_id: str,
        *,
        after: int | None,
        before: int | None,
        limit: int,
    ) -> list[Message]:
        if self.trust:
            check_room_id(room_id)
            if await self.store.rooms.room(room_id) is None:
                return []
        await self.readable_room(who, room_id)
        return await self.store.messages.history(room_id, after=after, before=before, limit=limit)

    # editing -----------------------------------------------------------------------------

    async def _own_message(self, who: Identity, message_id: str, *, admin_ok: bool) -> Message:
        msg = await self.store.messages.message(message_id)
        if msg is None:
            raise NotFound("message not found", code="message_not_found")
        _, role = await self.readable_room(who, msg.room_id)
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
        await self._publish_changes(changes)
        return msg

    async def delete(self, who: Identity, message_id: str) -> Message:
        original = await self._own_message(who, message_id, admin_ok=True)
        done = await self.store.messages.delete_message(message_id)
        if done is None:
            raise NotFound("message not found", code="message_not_found")
        msg, changes = done
        await self._publish_changes(changes)
        if original.file is not None:
            await self._drop_file(original.file.id)
        return msg

    # reactions, reads, typing, presence ---------------------------------------------------

    async def member_of(self, who: Identity, room_id: str) -> Room:
        """The room if ``who`` is a member (a private room is 404, a public one 403). In trust
        mode every route that names a room is first use, as sending is: created and joined."""
        if self.trust:
            await self.open_room(who, room_id)
        room, role = await self.readable_room(who, room_id)
        if role is None:
            raise Forbidden(f"you are not a member of room {room_id!r}", code="not_a_member")
        return room

    async def react(
        self, who: Identity, message_id: str, reaction: str, *, add: bool
    ) -> tuple[Message, bool]:
        check_reaction(reaction)
        msg = await self.store.messages.message(message_id)
        if msg is None:
            raise NotFound("message not found", code="message_not_found")
        await self.member_of(who, msg.room_id)
        if msg.deleted:
            raise Conflict("the message was deleted", code="message_deleted")
        changes = await self.store.messages.react(message_id, who.user_id, reaction, add)
        await self._publish_changes(changes)
        fresh = await self.store.messages.message(message_id)
        return (fresh or msg), bool(changes)

    async def mark_read(self, who: Identity, room_id: str, seq: int) -> tuple[int, int]:
        """Move my read pointer forward; returns (pointer, unread). Never moves backwards."""
        room = await self.member_of(who, room_id)
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
            await self._publish(receipt)
            await self._publish_changes(changes)
        return pointer, max(0, room.last_seq - pointer)

    async def set_typing(self, who: Identity, room_id: str, is_typing: bool) -> bool:
        await self.member_of(who, room_id)
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
        await self._publish(Event.named(room_id, "typing", payload, exclude=user_id))

    async def set_presence(self, who: Identity, status: Literal["online", "away"]) -> Status:
        return await self.presence.set_status(who.user_id, status)

    async def _presence_changed(self, user_id: str, status: Status) -> None:
        """Tell every room the user is in (each room's listeners share the user's rooms)."""
        try:
            room_ids = await self.store.rooms.room_ids_of(user_id)
        except Exception as exc:
            log.warning("presence of %s not published: %s", user_id, exc)
            return
        for room_id in room_ids:
            await self._publish(
                Event.named(room_id, "presence", {"user_id": user_id, "status": status})
            )

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
            await self._announce_room(room)
            await self._publish_changes(changes)
            return room
        except HubbubError:
            raise
        except Exception as exc:
            if room_id is not None and await self.store.rooms.room(room_id) is not None:
                raise Conflict(f"room {room_id!r} already exists", code="room_exists") from exc
            raise

    async def rooms(self, who: Identity) -> list[RoomView]:
        return await self.store.rooms.rooms_for(who.user_id)

    async def join(self, who: Identity, room_id: str) -> tuple[Room, bool]:
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
        await self._publish_changes(changes)
        return room, bool(changes)

    async def leave(self, who: Identity, room_id: str) -> bool:
        await self.readable_room(who, room_id)
        changes = await self.store.rooms.remove_member(room_id, who.user_id)
        await self._publish_changes(changes)
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
        await self._publish_changes(changes)
        return bool(changes)

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
        await self._publish_changes(changes)
        return room

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
        await self._publish_changes(changes)
        for m in await self.store.rooms.members(room_id):
            if m.user_id == target.id:
                return m, added
        raise NotFound("user not found", code="user_not_found")

    # search ------------------------------------------------------------------------------

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
            await self.readable_room(who, room_id)
        return await self.store.search.find(
            who.user_id, terms, room_id=room_id, limit=limit, cursor=before
        )

    # files -------------------------------------------------------------------------------

    files: FileStore | None = None
    """Where uploaded bytes live (set by the runtime); deleting a file message removes them."""

    async def file_room(self, who: Identity, room_id: str) -> Room:
        """Before an upload is read: only a member may share a file (403 ``not_a_member`` in a
        public room, 404 in a private one); trust mode creates and joins as sending does."""
        if self.trust:
            await self.open_room(who, room_id)
        return await self.member_of(who, room_id)

    async def send_file(self, who: Identity, room_id: str, caption: str, info: FileInfo) -> Sent:
        """Record a file whose bytes are already saved, and append its ``type: "file"`` message
        through the same writer as every message (so it gets its ``seq`` and is streamed).
        If anything fails, the file is removed again: no file without its message."""
        try:
            check_room_id(room_id)
            if caption:
                check_text(caption, self.max_message_chars)
            await self.store.files.add_file(
                FileRecord(
                    id=info.id,
                    room_id=room_id,
                    user_id=who.user_id,
                    name=info.name,
                    size=info.size,
                    content_type=info.content_type,
                    created_at=utc_now(),
                )
            )
            return await self._append(
                NewMessage(
                    room_id=room_id,
                    user_id=who.user_id,
                    username=who.username,
                    text=caption,
                    type="file",
                    file=info,
                )
            )
        except Exception:
            # Not on cancellation: a queued job may still be committed, with its file.
            await self._drop_file(info.id)
            raise

    async def readable_file(self, who: Identity, file_id: str) -> FileRecord:
        """A file, for members of its room; anyone else gets 404, as for an unknown file."""
        record = await self.store.files.file(file_id)
        if record is None or await self.store.rooms.membership(record.room_id, who.user_id) is None:
            raise NotFound("file not found", code="file_not_found")
        return record

    async def _drop_file(self, file_id: str) -> None:
        """Forget a file: its row first (downloads 404 at once), then its bytes."""
        try:
            await self.store.files.delete_file(file_id)
            if self.files is not None:
                await self.files.delete(file_id)
        except Exception as exc:
            log.warning("could not remove file %s: %s", file_id, exc)


def _sent(result: AppendResult, event: Event | None, room_id: str) -> Sent:
    outcome = result.outcome
    if outcome is AppendOutcome.CREATED or outcome is AppendOutcome.DUPLICATE:
        assert result.message is not None
        assert event is not None
        return Sent(result.message, event, outcome is AppendOutcome.CREATED)
    if outcome is AppendOutcome.CONFLICT:
        raise Conflict(
            "client_msg_id was already used for a different message",
            code="idempotency_conflict",
        )
    if outcome is AppendOutcome.NOT_MEMBER:
        raise Forbidden(f"you are not a member of room {room_id!r}", code="not_a_member")
    if outcome is AppendOutcome.REJECTED:
        raise Invalid(
            "the message could not be stored (the store refused it); nothing was stored",
            code="message_rejected",
        )
    raise NotFound(f"room {room_id!r} not found", code="room_not_found")
