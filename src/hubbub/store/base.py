"""The storage interface: the source of truth for messages, rooms and accounts.

The store is split by role (``store/roles.py``: accounts, rooms, messages, the change log,
search, the file index); :class:`Store` puts the roles of one backend together. Rules every
backend keeps, across roles (the contract tests in ``tests/contract/test_store_*.py`` check
them, and each role's own rules, on every backend):

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
from typing import TYPE_CHECKING, Protocol

import msgspec

from hubbub.changes import Change
from hubbub.models import Message, NewMessage, Role, Room

if TYPE_CHECKING:  # the roles use the values below
    from hubbub.store.roles import (
        Accounts,
        ChangeLog,
        FileIndex,
        Lookups,
        Messages,
        Rooms,
        Search,
    )


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
    # The server API speaks for the application: a ``system`` message needs no membership.
    system: bool = False


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
    """The store a server runs on: its roles over one database, and the lifecycle they
    share. Callers name the role they use (``store.messages.append_batch``), so each role's
    rules are read in one place (``store/roles.py``) and a test double needs only the role a
    caller uses."""

    accounts: Accounts
    rooms: Rooms
    messages: Messages
    log: ChangeLog
    search: Search
    files: FileIndex
    lookups: Lookups

    async def start(self) -> None:
        """Bring the schema to head; several nodes starting at once on an empty database
        migrate once."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raises ``Unavailable`` when the database does not answer (readiness)."""
        ...
