"""The storage interface: the source of truth for messages, rooms and accounts.

Rules every backend keeps (the contract tests in ``tests/integration/test_store_contract.py``
check them):

* ``append_batch`` is atomic per call: every accepted item of the batch is committed in one
  transaction, and *durable on return* (on SQLite: WAL with ``synchronous=FULL``; on PostgreSQL:
  a committed transaction). Nothing is half-written: a batch that fails raises and stores nothing.
* Per room, ``seq`` starts at 1 and grows by exactly 1 in commit order, assigned inside the
  inserting transaction, never reused (also after deletes, crashes, or concurrent writers on
  other nodes: the room row's ``last_seq`` is the counter and is updated under its row lock).
* ``client_msg_id`` is unique per user: a repeat returns the stored message as ``duplicate`` (same
  room and text) or ``conflict`` (different body), and stores nothing.
* Reads (``history``) see only committed messages, ordered by ``seq``.
* Every stored change (edit, delete, reaction, membership, room update, a user's own read
  move) is logged in the same transaction as the change (``store/changelog.py``): per room, a
  ``rev`` shared with the room's messages grows by exactly 1 per event; every logged event has a
  stream position from the one counter. ``room_log``/``user_log`` replay them in that order.
* One item's failure is its own: an item the store refuses (a constraint, a bad value) is
  ``REJECTED`` and the rest of the batch is stored; only an unreachable database fails all.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

import msgspec

from hubbub.changes import Change, Entry
from hubbub.models import FileRecord, Member, Message, NewMessage, Role, Room, User, Visibility


class AppendOutcome(enum.Enum):
    CREATED = "created"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    NO_ROOM = "no_room"
    NOT_MEMBER = "not_member"
    HIDDEN = "hidden"
    REJECTED = "rejected"  # this item failed in the store on its own (a bad value, a constraint)


class AppendRequest(msgspec.Struct, frozen=True):
    """A message to append plus what may happen on the way (trust mode's first-use rules)."""

    message: NewMessage
    create_room: bool = False
    join_public: bool = False
    create_user: bool = False


class AppendResult(msgspec.Struct, frozen=True):
    outcome: AppendOutcome
    message: Message | None = None
    position: int = 0  # the message's place in the all-rooms stream (``gseq``)
    room_created: bool = False
    rev: int = 0  # the message's place in its room's log
    changes: tuple[Change, ...] = ()  # logged before the message: trust mode's first use


class SessionRecord(msgspec.Struct, frozen=True):
    id: str
    user_id: str
    expires_at: float
    revoked: bool


class RoomView(msgspec.Struct, frozen=True):
    """A room as one user sees it in their list."""

    room: Room
    member: bool
    role: Role | None
    unread: int | None = None
    last_message: Message | None = None


class Store(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...

    # accounts
    async def create_user(self, username: str, password_hash: str | None) -> User: ...
    async def ensure_user(self, user_id: str) -> None: ...
    async def user_by_name(self, username: str) -> tuple[User, str | None] | None: ...
    async def user_by_id(self, user_id: str) -> User | None: ...
    async def create_session(self, user_id: str, ttl: float) -> SessionRecord: ...
    async def session(self, session_id: str) -> SessionRecord | None: ...
    async def password_hash(self, user_id: str) -> str | None: ...
    async def revoke_session(self, session_id: str) -> None:
        """Revoke one session (and drop the tickets it asked for)."""
        ...

    async def revoke_sessions(self, user_id: str, keep: str | None = None) -> list[str]:
        """Revoke every live session of the user except ``keep``; the ids it revoked."""
        ...

    async def set_password(
        self, user_id: str, password_hash: str, keep: str | None = None
    ) -> list[str]:
        """In one transaction: replace the password hash and revoke every other live session
        of the user (all but ``keep``); the ids it revoked."""
        ...

    async def add_refresh_token(self, token_hash: str, session_id: str, ttl: float) -> None: ...
    async def use_refresh_token(self, token_hash: str) -> tuple[str, SessionRecord] | None:
        """Mark the token used and return ``("ok"|"reused", session)``; ``None`` if unknown.

        A token presented a second time means it leaked: the caller revokes the session.
        """
        ...

    async def add_ticket(
        self, ticket_hash: str, user_id: str, session_id: str | None, ttl: float
    ) -> None: ...
    async def consume_ticket(self, ticket_hash: str) -> tuple[str, str | None] | None:
        """Use the ticket up: ``(user_id, session_id)``, or ``None`` when it is unknown, used,
        expired, or the session that asked for it has ended."""
        ...

    # rooms
    async def create_room(
        self,
        name: str,
        visibility: Visibility,
        creator: str,
        room_id: str | None = None,
        creator_name: str | None = None,
    ) -> tuple[Room, list[Change]]: ...
    async def room(self, room_id: str) -> Room | None: ...
    async def membership(self, room_id: str, user_id: str) -> Role | None: ...
    async def room_for(self, room_id: str, user_id: str) -> tuple[Room, Role | None] | None:
        """The room and the user's role in it, in one read (``None``: no such room)."""
        ...

    async def rooms_for(self, user_id: str) -> list[RoomView]: ...
    async def add_member(
        self, room_id: str, user_id: str, role: Role = "member"
    ) -> list[Change]: ...
    async def remove_member(self, room_id: str, user_id: str) -> list[Change]: ...
    async def update_room(
        self, room_id: str, *, name: str | None, visibility: Visibility | None
    ) -> tuple[Room, list[Change]] | None: ...
    async def members(self, room_id: str) -> list[Member]: ...
    async def enter_room(
        self, room_id: str, user_id: str, username: str | None = None
    ) -> tuple[Room, list[Change]]:
        """Trust mode, in one transaction: create the user, the public room and the membership
        as needed. Returns the room and the log of the user joining (empty if they were in
        already). A private room the user is not in is returned unchanged (the caller refuses
        it)."""
        ...

    async def enter_rooms(
        self, items: Sequence[tuple[str, str, str]]
    ) -> list[tuple[Room, list[Change]]]:
        """``enter_room`` for many ``(room_id, user_id, username)`` in one transaction."""
        ...

    # messages
    async def append_batch(self, items: Sequence[AppendRequest]) -> list[AppendResult]: ...
    async def history(
        self,
        room_id: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[Message]: ...
    async def message(self, message_id: str) -> Message | None: ...
    async def edit_message(
        self, message_id: str, text: str
    ) -> tuple[Message, list[Change]] | None: ...
    async def delete_message(self, message_id: str) -> tuple[Message, list[Change]] | None: ...
    async def oldest_seq(self, room_id: str) -> int | None: ...
    async def react(
        self, message_id: str, user_id: str, reaction: str, add: bool
    ) -> list[Change]: ...
    async def mark_read(self, room_id: str, user_id: str, seq: int) -> tuple[int, list[Change]]: ...
    async def room_ids_of(self, user_id: str) -> list[str]: ...
    async def heads(self, room_ids: list[str]) -> dict[str, int]:
        """Each room's newest ``rev``."""
        ...

    async def room_log(
        self, room_id: str, after: int, limit: int, before: int | None = None
    ) -> list[Entry]:
        """The room's log after ``rev`` ``after`` (and before ``before``), in ``rev`` order."""
        ...

    async def user_log(
        self, user_id: str, after: int, limit: int, *, only_room: str | None = None
    ) -> list[Entry]:
        """What ``/chat/events`` replays after stream position ``after``, in position order."""
        ...

    async def rev_at(self, room_id: str, seq: int) -> int: ...

    async def position(self) -> int: ...

    async def log_between(self, after: int, through: int, channels: Sequence[str]) -> list[Entry]:
        """The entries of ``channels`` (rooms and personal channels) with stream positions in
        ``(after, through]``, in position order."""
        ...

    async def visible_position(self, user_id: str, room_ids: Sequence[str]) -> int:
        """The newest stream position among the entries ``user_id`` can see (rooms
        ``room_ids`` and their personal channel): where a fresh ``/chat/events`` stream starts,
        so its cursor moves only with what its caller can read."""
        ...

    async def purge_older_than(self, days: int) -> tuple[int, list[str]]: ...

    # search
    async def search(
        self,
        user_id: str,
        query_terms: Sequence[str],
        *,
        room_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[tuple[Message, list[tuple[int, int]]]], str | None]:
        """Full-text search over the messages ``user_id`` may read (public rooms and their
        own; never deleted ones), optionally in one room: the best ``limit`` matches after
        ``cursor``, each with its highlights as ``(start, end)`` code-point offsets into its
        text, and the cursor of the next page (``None`` when there is none). A cursor the store
        did not hand out raises ``BadRequest``."""
        ...

    # files (their bytes live in a FileStore; these rows say which room they belong to)
    async def add_file(self, record: FileRecord) -> None: ...
    async def file(self, file_id: str) -> FileRecord | None: ...
    async def delete_file(self, file_id: str) -> bool: ...
