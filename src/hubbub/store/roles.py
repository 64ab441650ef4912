"""The store's roles: one interface per kind of caller, each with the rules a backend keeps.

The rules that hold across roles (atomicity, the change log, ``seq``) are in ``store/base.py``;
the contract tests in ``tests/contract/test_store_*.py`` check every rule below on every
backend. "Missing" below means no such row: methods say what they return for it rather than
raise, because callers turn it into their own 404 or 403.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from hubbub.changes import Change, Entry
from hubbub.models import FileRecord, Member, Message, Role, Room, User, Visibility
from hubbub.store.base import AppendRequest, AppendResult, RoomView, SessionRecord


class Accounts(Protocol):
    """Users and what proves who they are: sessions, refresh tokens, tickets.

    Secrets are never stored: tokens and tickets arrive hashed. Every revocation also drops the
    tickets the session asked for, so a ticket cannot outlive its session."""

    async def create_user(self, username: str, password_hash: str | None) -> User:
        """A new account with a fresh id. A taken name raises ``IntegrityError``: taken
        exactly, or, for an account with a password, by one with the same name regardless of
        case and Unicode form."""
        ...

    async def ensure_user(self, user_id: str) -> None:
        """Trust mode: the user ``user_id`` (named ``user_id``) exists afterwards; a repeat
        does nothing."""
        ...

    async def provision_user(self, user_id: str, username: str) -> tuple[User, bool]:
        """The server API's user ``user_id`` named ``username`` (no password): created, or, when
        the id exists, renamed to ``username`` if that differs; ``(user, created)``. A name
        taken by another user raises ``IntegrityError`` and changes nothing."""
        ...

    async def delete_user(self, user_id: str) -> list[str] | None:
        """In one transaction: the user, their sessions, refresh tokens and tickets go (their
        memberships must be gone already: the caller removes them through ``Rooms`` so each
        is logged). The ids of the sessions that were live; ``None``: no such user. Their
        messages stay, under their id and name."""
        ...

    async def user_by_name(self, username: str) -> tuple[User, str | None] | None:
        """The account named exactly ``username``, else the one whose name is the same
        regardless of case and Unicode form (``auth/names.py``), with its password hash;
        ``None`` when neither exists."""
        ...

    async def user_by_id(self, user_id: str) -> User | None: ...

    async def password_hash(self, user_id: str) -> str | None:
        """``None`` both for a missing user and for one without a password (trust mode)."""
        ...

    async def set_password(
        self, user_id: str, password_hash: str, keep: str | None = None
    ) -> list[str]:
        """In one transaction: replace the password hash and revoke every other live session
        of the user (all but ``keep``), so a stolen session dies with the old password; the
        ids it revoked."""
        ...

    async def create_session(self, user_id: str, ttl: float) -> SessionRecord: ...

    async def session(self, session_id: str) -> SessionRecord | None:
        """The session as stored, revoked or expired too (the caller decides); ``None`` if
        unknown."""
        ...

    async def revoke_session(self, session_id: str) -> None:
        """Revoke one session (and drop the tickets it asked for); unknown or revoked
        already: nothing happens."""
        ...

    async def revoke_sessions(self, user_id: str, keep: str | None = None) -> list[str]:
        """Revoke every live session of the user except ``keep``; the ids it revoked
        (expired and revoked ones are not live, so not in it)."""
        ...

    async def add_refresh_token(self, token_hash: str, session_id: str, ttl: float) -> None: ...

    async def use_refresh_token(self, token_hash: str) -> tuple[str, SessionRecord] | None:
        """Mark the token used and return ``("ok"|"reused", session)``; ``None`` if unknown or
        expired. The session is returned as stored (revoked too): the caller checks it.

        A token presented a second time means it leaked: the caller revokes the session.
        """
        ...

    async def add_ticket(
        self, ticket_hash: str, user_id: str, session_id: str | None, ttl: float
    ) -> None:
        """A short-lived single-use ticket (for a WebSocket or EventSource that cannot send a
        header); expired tickets are swept in the same transaction."""
        ...

    async def consume_ticket(self, ticket_hash: str) -> tuple[str, str | None] | None:
        """Use the ticket up: ``(user_id, session_id)``, or ``None`` when it is unknown, used,
        expired, or the session that asked for it has ended. A second use is always ``None``."""
        ...


class Rooms(Protocol):
    """Rooms and who is in them. Every change here is logged with the room's next ``rev`` in
    the same transaction (``store/base.py``), and returned as the ``Change`` list the caller
    publishes: empty means nothing changed, so nothing to publish."""

    async def create_room(
        self,
        name: str,
        visibility: Visibility,
        creator: str,
        room_id: str | None = None,
        creator_name: str | None = None,
    ) -> tuple[Room, list[Change]]:
        """The room, its creator as admin, and the log of the creator joining
        (``member_joined`` in the room, ``room_added`` on their personal channel). A taken
        ``room_id`` raises ``IntegrityError`` and stores nothing."""
        ...

    async def room(self, room_id: str) -> Room | None: ...

    async def membership(self, room_id: str, user_id: str) -> Role | None:
        """``None``: not a member (or no such room)."""
        ...

    async def room_for(self, room_id: str, user_id: str) -> tuple[Room, Role | None] | None:
        """The room and the user's role in it, in one read (``None``: no such room)."""
        ...

    async def rooms_for(self, user_id: str) -> list[RoomView]:
        """The rooms the user is in and every public room, oldest first. ``unread`` (members
        only) is the room's newest ``seq`` minus the user's read pointer; ``last_message`` the
        room's newest message, ``None`` in an empty room."""
        ...

    async def room_ids_of(self, user_id: str) -> list[str]:
        """The ids of the rooms the user is a member of (not public rooms they are not in)."""
        ...

    async def members(self, room_id: str) -> list[Member]:
        """In joining order; ``[]`` for a missing room."""
        ...

    async def add_member(self, room_id: str, user_id: str, role: Role = "member") -> list[Change]:
        """Add a member: ``member_joined`` (room) and ``room_added`` (theirs). A repeat keeps
        the first role and returns ``[]``."""
        ...

    async def remove_member(self, room_id: str, user_id: str) -> list[Change]:
        """Remove a member: ``member_left`` (room) and ``room_removed`` (theirs); ``[]`` if they
        were not one."""
        ...

    async def update_room(
        self, room_id: str, *, name: str | None, visibility: Visibility | None
    ) -> tuple[Room, list[Change]] | None:
        """Rename and/or change visibility (``None``: leave as is); the room after and one
        ``room_updated`` change, or ``[]`` when the values were the room's already. ``None``:
        no such room."""
        ...

    async def enter_room(
        self, room_id: str, user_id: str, username: str | None = None
    ) -> tuple[Room, list[Change]]:
        """Trust mode, in one transaction: create the user, the public room and the membership
        as needed (the room's first user is its admin). Returns the room and the log of the
        user joining (empty if they were in already). A private room the user is not in is
        returned unchanged and not joined (the caller refuses it)."""
        ...

    async def enter_rooms(
        self, items: Sequence[tuple[str, str, str]]
    ) -> list[tuple[Room, list[Change]]]:
        """``enter_room`` for many ``(room_id, user_id, username)`` in one transaction, one
        result per item in order; a pair repeated in ``items`` joins once (the first)."""
        ...


class Messages(Protocol):
    """Messages and what happens to them. Sends are batched (``append_batch``): one transaction
    per batch, so the send path costs one commit for many messages."""

    async def append_batch(self, items: Sequence[AppendRequest]) -> list[AppendResult]:
        """One result per item, in order. Every accepted item commits in one transaction, and
        is durable on return; ``seq`` and ``rev`` are taken under the room's row lock.

        Per item: ``NO_ROOM`` (missing, and not ``create_room``), ``HIDDEN`` (private, not a
        member), ``NOT_MEMBER`` (public, not a member, not ``join_public``), ``DUPLICATE`` /
        ``CONFLICT`` (the user's ``client_msg_id`` is taken — in the store or earlier in the
        batch — by the same room and text / by another body; nothing stored), ``REJECTED`` (the
        store refused this item: the rest of the batch is stored), else ``CREATED``. Only an
        unreachable database fails the whole call (``Unavailable``), and then nothing is
        stored."""
        ...

    async def history(
        self,
        room_id: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """Up to ``limit`` committed messages in ``seq`` order (deleted ones included, emptied):
        the first after ``after`` if given, else the newest before ``before`` (or the newest
        of all). ``[]`` for a missing room."""
        ...

    async def message(self, message_id: str) -> Message | None: ...

    async def oldest_seq(self, room_id: str) -> int | None:
        """The oldest ``seq`` still stored (retention purges from the start); ``None``: no
        message left."""
        ...

    async def edit_message(self, message_id: str, text: str) -> tuple[Message, list[Change]] | None:
        """The message after the edit and its ``message_edited`` change (the whole message, so
        a replay can keep only the last); ``None``: missing or deleted."""
        ...

    async def delete_message(self, message_id: str) -> tuple[Message, list[Change]] | None:
        """Text, file and reactions go, the ``seq`` stays (histories keep no holes); logged as
        ``message_deleted``. A repeat logs again. ``None``: missing."""
        ...

    async def react(self, message_id: str, user_id: str, reaction: str, add: bool) -> list[Change]:
        """Add or remove one user's reaction: one ``reaction`` change, or ``[]`` if nothing
        changed (added twice, removed when absent, a missing message)."""
        ...

    async def mark_read(self, room_id: str, user_id: str, seq: int) -> tuple[int, list[Change]]:
        """Move the user's read pointer forward to ``seq``, never back; the pointer after, and
        a personal ``read`` change (so the user's other devices follow) or ``[]`` if it did
        not move (0 and ``[]`` for a non-member)."""
        ...

    async def purge_older_than(self, days: int) -> tuple[int, list[str]]:
        """Retention, in one transaction: delete messages older than ``days`` (with their
        reactions), the change log as old and the file records as old; how many messages went
        and the ids of the files to remove from the FileStore. A stream resuming from before
        that gets ``reset``."""
        ...


class ChangeLog(Protocol):
    """Reading the log back: replays, resumes and the holes the hub finds. Every entry has a
    room ``rev`` (``None`` on personal channels) and a stream ``position``; pages are read in
    one snapshot, so a page never holds a later entry without an earlier one."""

    async def heads(self, room_ids: list[str]) -> dict[str, int]:
        """Each room's newest ``rev``; missing rooms are left out."""
        ...

    async def position(self) -> int:
        """The newest stream position handed out (0 on an empty store)."""
        ...

    async def rev_at(self, room_id: str, seq: int) -> int:
        """The ``rev`` of message ``seq`` (or of the newest one before it): where a client that
        last saw message ``seq`` stands in the room's log; 0 if there is none."""
        ...

    async def room_log(
        self, room_id: str, after: int, limit: int, before: int | None = None
    ) -> list[Entry]:
        """The room's log after ``rev`` ``after`` (and before ``before``), in ``rev`` order, at
        most ``limit``: messages in their current state, and changes."""
        ...

    async def user_log(
        self, user_id: str, after: int, limit: int, *, only_room: str | None = None
    ) -> list[Entry]:
        """What ``/chat/events`` replays after stream position ``after``, in position order,
        at most ``limit``: the entries of every room the user is in now and their personal
        channel. ``only_room``: that room's alone (``[]`` if they are not in it), or, when it is
        their personal channel, their personal changes alone."""
        ...

    async def log_between(self, after: int, through: int, channels: Sequence[str]) -> list[Entry]:
        """The entries of ``channels`` (rooms and personal channels) with stream positions in
        ``(after, through]``, in position order; no limit (the hub asks for gaps it saw)."""
        ...

    async def notify(self, user_id: str, event: str, data: Any) -> Change:
        """A notification for one user (the server API's ``SendToUser``), logged on their
        personal channel as ``notification`` with data ``{"event", "data", "created_at"}``:
        delivered like every personal change and replayed on resume."""
        ...

    async def visible_position(self, user_id: str, room_ids: Sequence[str]) -> int:
        """The newest stream position among the entries ``user_id`` can see (rooms
        ``room_ids`` and their personal channel): where a fresh ``/chat/events`` stream starts,
        so its cursor moves only with what its caller can read. 0: nothing visible."""
        ...


class Search(Protocol):
    async def find(
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
        text, and the cursor of the next page (``None`` when there is none). Pages are of the
        store as it was at the first page. A cursor the store did not hand out raises
        ``BadRequest``."""
        ...


class FileIndex(Protocol):
    """Which room an uploaded file belongs to; the bytes live in a ``FileStore``."""

    async def add_file(self, record: FileRecord) -> None:
        """A taken id raises ``IntegrityError``."""
        ...

    async def file(self, file_id: str) -> FileRecord | None: ...

    async def delete_file(self, file_id: str) -> bool:
        """Whether there was a record to delete (a repeat: ``False``)."""
        ...


class Lookups(Protocol):
    """Many of one read at once: what a storm of connects asks for, answered in one round
    trip (``hubbub.batch.TickBatch`` gathers the keys). Each answers exactly what the read of
    one key would (``Accounts``, ``Rooms``) for every key; a missing key is absent."""

    async def accounts_named(self, names: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Trust mode: per name, ``(id, username)`` of the user whose id it is, else of the
        account named exactly so, else of the one whose name is the same regardless of case
        and Unicode form."""
        ...

    async def usernames(self, user_ids: Sequence[str]) -> dict[str, str]: ...

    async def sessions(self, session_ids: Sequence[str]) -> dict[str, SessionRecord]: ...

    async def room_access(
        self, pairs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[Room, Role | None]]:
        """Per ``(room_id, user_id)``: the room and the user's role in it (``None``: not a
        member), read in one snapshot; absent when the room is missing."""
        ...

    async def room_ids_of(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """Per user, the ids of the rooms they are a member of (none: an empty list)."""
        ...

    async def member_ids(self, room_ids: Sequence[str]) -> dict[str, list[str]]:
        """Per room, its members' ids in ``members`` order (an unknown room: no members)."""
        ...
