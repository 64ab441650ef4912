"""Shared files: a file is a row, its bytes and a ``type: "file"`` message, and none of the
three may outlive the others (a failed send removes the file; deleting the message drops it)."""

from __future__ import annotations

import logging

from hubbub.auth.identity import Identity
from hubbub.chat.checks import check_room_id, check_text
from hubbub.chat.rooms import RoomRules
from hubbub.chat.writer import Sent, Writer
from hubbub.errors import NotFound
from hubbub.files.base import FileStore
from hubbub.limits import MAX_MESSAGE_CHARS
from hubbub.models import FileInfo, FileRecord, NewMessage, Room, utc_now
from hubbub.store.base import Store

log = logging.getLogger("hubbub.chat")


class FileRules:
    def __init__(
        self,
        store: Store,
        rooms: RoomRules,
        writer: Writer,
        files: FileStore | None,
        *,
        max_message_chars: int = MAX_MESSAGE_CHARS,
    ) -> None:
        self.store = store
        self.rooms = rooms
        self.writer = writer
        self.files = files
        self.max_message_chars = max_message_chars

    async def file_room(self, who: Identity, room_id: str) -> Room:
        """Before an upload is read: only a member may share a file (403 ``not_a_member`` in a
        public room, 404 in a private one); trust mode creates and joins as sending does."""
        if self.rooms.trust:
            await self.rooms.open_room(who, room_id)
        return await self.rooms.member_of(who, room_id)

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
            return await self.writer.append(
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
            await self.drop(info.id)
            raise

    async def readable_file(self, who: Identity, file_id: str) -> FileRecord:
        """A file, for members of its room; anyone else gets 404, as for an unknown file."""
        record = await self.store.files.file(file_id)
        if record is None or await self.store.rooms.membership(record.room_id, who.user_id) is None:
            raise NotFound("file not found", code="file_not_found")
        return record

    async def drop(self, file_id: str) -> None:
        """Forget a file: its row first (downloads 404 at once), then its bytes. Never raises:
        the message that carried it is gone already, and a leftover is only disk space."""
        try:
            await self.store.files.delete_file(file_id)
            if self.files is not None:
                await self.files.delete(file_id)
        except Exception as exc:
            log.warning("could not remove file %s: %s", file_id, exc)
