"""Stored changes as every layer sees them (no I/O, no framework): the records of the change
log and the rules for replaying it. The SQL that writes and reads them is in
``store/changelog.py``; why the log has this shape is in its docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hubbub.models import Message


@dataclass(frozen=True, slots=True)
class Change:
    """A stored change other than a new message, as streamed: ``data`` is its JSON."""

    room_id: str  # a room, or the personal channel ``@<user>``
    name: str
    data: bytes
    position: int
    rev: int | None = None
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class LoggedMessage:
    """A message with its places in the log."""

    message: Message
    position: int
    rev: int


Entry = LoggedMessage | Change


@dataclass(frozen=True, slots=True)
class Pending:
    """A change to record: ``room_id`` a room or ``@<user>``; ``payload`` any JSON-able value."""

    room_id: str
    name: str
    payload: Any
    ref: str | None = None


def merge(
    messages: list[LoggedMessage], found: list[Change], limit: int, *, by_position: bool
) -> list[Entry]:
    """Two ordered pages into one, cut at ``limit`` (both pages were read with ``limit``, so
    the first ``limit`` entries overall are all there)."""
    entries: list[Entry] = [*messages, *found]
    if by_position:
        entries.sort(key=lambda e: e.position)
    else:
        entries.sort(key=lambda e: e.rev or 0)
    return entries[:limit]


def fold(entries: list[Entry]) -> list[Entry]:
    """A replay may fold repeated changes of one message into its latest state: an edit or a
    delete followed by another edit or delete of the same message is dropped (the later one
    carries the whole message). Reactions and membership are kept: each says one thing."""
    last: dict[str, int] = {}
    for i, e in enumerate(entries):
        if isinstance(e, Change) and e.ref and e.name in ("message_edited", "message_deleted"):
            last[e.ref] = i
    if not last:
        return entries
    return [
        e
        for i, e in enumerate(entries)
        if not (
            isinstance(e, Change)
            and e.ref
            and e.name in ("message_edited", "message_deleted")
            and last[e.ref] != i
        )
    ]
