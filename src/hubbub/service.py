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
import re
from collections.abc import Callable
from dataclasses import dataclass

from hubbub.auth.identity import Identity
from hubbub.broker.base import Broker
from hubbub.encoding import Event
from hubbub.errors import Conflict, Forbidden, HubbubError, Invalid, NotFound, Unavailable
from hubbub.models import ClientTimestamp, Member, Message, NewMessage, Role, Room, Visibility
from hubbub.store.base import AppendOutcome, AppendRequest, AppendResult, RoomView, Store

log = logging.getLogger("hubbub.service")

ROOM_ID_RE = re.compile(r"[A-Za-z0-9_.:~-]{1,64}")
MAX_CLIENT_MSG_ID = 128
MAX_ROOM_NAME = 100


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
        max_message_chars: int = 4000,
        write_batch_max: int = 256,
        on_stored: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.trust = trust
        self.max_message_chars = max_message_chars
        self._batch_max = write_batch_max
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._on_stored = on_stored

    async def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def close(self) -> None:
        """Finish every queued send, then stop the writer."""
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
        request = AppendRequest(
            NewMessage(
                room_id=room_id,
                user_id=who.user_id,
                username=who.username,
                text=text,
                timestamp=timestamp,
                client_msg_id=client_msg_id,
            ),
            create_room=self.trust,
            join_public=self.trust,
            create_user=self.trust,
        )
        if self._writer is None or self._writer.done():
            raise Unavailable("the server is shutting down", code="shutting_down")
        future: asyncio.Future[tuple[AppendResult, Event | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.put_nowait(_Job(request, future))
        result, event = await future
        return _sent(result, event, room_id)

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
            results = await self.store.append_batch([j.request for j in jobs])
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
                event = Event.message(result.message)
            events.append(event)
            if result.outcome is AppendOutcome.CREATED and event is not None:
                if result.joined:
                    await self._publish_member(result.message, "member_joined")  # type: ignore[arg-type]
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

    async def _publish_member(self, msg: Message, name: str) -> None:
        await self._publish(
            Event.named(
                msg.room_id,
                name,
                {"room_id": msg.room_id, "user_id": msg.user_id, "username": msg.username},
            )
        )

    async def member_event(self, room_id: str, user_id: str, username: str, name: str) -> None:
        await self._publish(
            Event.named(
                room_id, name, {"room_id": room_id, "user_id": user_id, "username": username}
            )
        )

    # reading -----------------------------------------------------------------------------

    async def readable_room(self, who: Identity, room_id: str) -> tuple[Room, Role | None]:
        """The room if ``who`` may read it; a private room is 404 to non-members."""
        check_room_id(room_id)
        room = await self.store.room(room_id)
        if room is None:
            raise NotFound(f"room {room_id!r} not found", code="room_not_found")
        role = await self.store.membership(room_id, who.user_id)
        if room.visibility == "private" and role is None:
            raise NotFound(f"room {room_id!r} not found", code="room_not_found")
        return room, role

    async def open_room(self, who: Identity, room_id: str) -> Room:
        """Before a stream: in trust mode the room is created and joined on first use."""
        if self.trust:
            check_room_id(room_id)
            if await self.store.membership(room_id, who.user_id) is None:
                room, joined = await self.store.enter_room(room_id, who.user_id)
                if joined:
                    await self.member_event(room_id, who.user_id, who.username, "member_joined")
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
            if await self.store.room(room_id) is None:
                return []
        await self.readable_room(who, room_id)
        return await self.store.history(room_id, after=after, before=before, limit=limit)

    # editing -----------------------------------------------------------------------------

    async def _own_message(self, who: Identity, message_id: str, *, admin_ok: bool) -> Message:
        msg = await self.store.message(message_id)
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
        msg = await self.store.edit_message(message_id, text)
        if msg is None:
            raise Conflict("the message was deleted", code="message_deleted")
        await self._publish(Event.named(msg.room_id, "message_edited", msg))
        return msg

    async def delete(self, who: Identity, message_id: str) -> Message:
        await self._own_message(who, message_id, admin_ok=True)
        msg = await self.store.delete_message(message_id)
        if msg is None:
            raise NotFound("message not found", code="message_not_found")
        await self._publish(Event.named(msg.room_id, "message_deleted", msg))
        return msg

    # rooms -------------------------------------------------------------------------------

    async def create_room(
        self, who: Identity, name: str, visibility: Visibility, room_id: str | None
    ) -> Room:
        name = name.strip()
        if not name or len(name) > MAX_ROOM_NAME:
            raise Invalid(f"name must be 1-{MAX_ROOM_NAME} characters", code="invalid_name")
        if room_id is not None:
            check_room_id(room_id)
            if await self.store.room(room_id) is not None:
                raise Conflict(f"room {room_id!r} already exists", code="room_exists")
        try:
            return await self.store.create_room(name, visibility, who.user_id, room_id)
        except HubbubError:
            raise
        except Exception as exc:
            if room_id is not None and await self.store.room(room_id) is not None:
                raise Conflict(f"room {room_id!r} already exists", code="room_exists") from exc
            raise

    async def rooms(self, who: Identity) -> list[RoomView]:
        return await self.store.rooms_for(who.user_id)

    async def join(self, who: Identity, room_id: str) -> tuple[Room, bool]:
        room, role = await self.readable_room(who, room_id)
        if role is not None:
            return room, False
        added = await self.store.add_member(room_id, who.user_id)
        if added:
            await self.member_event(room_id, who.user_id, who.username, "member_joined")
        return room, added

    async def leave(self, who: Identity, room_id: str) -> bool:
        await self.readable_room(who, room_id)
        removed = await self.store.remove_member(room_id, who.user_id)
        if removed:
            await self.member_event(room_id, who.user_id, who.username, "member_left")
        return removed

    async def members(self, who: Identity, room_id: str) -> list[Member]:
        await self.readable_room(who, room_id)
        return await self.store.members(room_id)

    async def invite(
        self, who: Identity, room_id: str, *, user_id: str | None, username: str | None
    ) -> tuple[Member, bool]:
        _, role = await self.readable_room(who, room_id)
        if role is None:
            raise Forbidden("only members can add members", code="not_a_member")
        if user_id is not None:
            target = await self.store.user_by_id(user_id)
        elif username is not None:
            found = await self.store.user_by_name(username)
            target = found[0] if found else None
        else:
            raise Invalid("give user_id or username", code="missing_user")
        if target is None:
            raise NotFound("user not found", code="user_not_found")
        added = await self.store.add_member(room_id, target.id)
        if added:
            await self.member_event(room_id, target.id, target.username, "member_joined")
        for m in await self.store.members(room_id):
            if m.user_id == target.id:
                return m, added
        raise NotFound("user not found", code="user_not_found")


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
    raise NotFound(f"room {room_id!r} not found", code="room_not_found")
