"""A client's picture of a room, built only from the events it received.

This is what the oracle compares with the server: if a client on any transport, through any
number of cuts and reconnects, ends up showing something other than what the store holds, a
change was lost, doubled or misapplied on the way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Snapshot = dict[str, tuple[int, str, bool, str | None, tuple[tuple[str, tuple[str, ...]], ...]]]


def snapshot(messages: list[dict[str, Any]] | dict[str, dict[str, Any]]) -> Snapshot:
    """The comparable state of messages: seq, text, deleted, edited_at, reactions."""
    values = messages.values() if isinstance(messages, dict) else messages
    return {
        m["id"]: (
            int(m["seq"]),
            str(m["text"]),
            bool(m["deleted"]),
            m.get("edited_at"),
            tuple(
                sorted((k, tuple(sorted(v))) for k, v in (m.get("reactions") or {}).items() if v)
            ),
        )
        for m in values
    }


@dataclass
class Counters:
    """Per-client tallies the summary table adds up."""

    deliveries: int = 0
    duplicated: int = 0
    reordered: int = 0
    reconnects: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class RoomModel:
    room: str
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_seq: int = 0
    seen_seqs: set[int] = field(default_factory=set)
    seen_ids: set[str] = field(default_factory=set)

    def apply(self, name: str, event_id: Any, data: dict[str, Any], counts: Counters) -> None:
        """Apply one stored change, as a UI would; count anything arriving twice or late."""
        if event_id is not None and name != "message":
            key = f"{name}:{event_id}"
            if key in self.seen_ids:
                counts.duplicated += 1
                counts.problems.append(f"{self.room}: {key} received twice")
                return
            self.seen_ids.add(key)
        if name == "message":
            seq = int(data["seq"])
            counts.deliveries += 1
            if seq in self.seen_seqs:
                counts.duplicated += 1
                counts.problems.append(f"{self.room}: message seq {seq} received twice")
                return
            if seq < self.max_seq:
                counts.reordered += 1
                counts.problems.append(f"{self.room}: seq {seq} after {self.max_seq}")
            self.seen_seqs.add(seq)
            self.max_seq = max(self.max_seq, seq)
            self.messages[data["id"]] = data
        elif name in ("message_edited", "message_deleted"):
            if data["id"] not in self.messages:
                counts.problems.append(f"{self.room}: {name} for unknown message {data['id']}")
            self.messages[data["id"]] = data
        elif name == "reaction":
            msg = self.messages.get(data["message_id"])
            if msg is None:
                counts.problems.append(f"{self.room}: reaction on unknown {data['message_id']}")
                return
            reactions: dict[str, list[str]] = {
                k: list(v) for k, v in (msg.get("reactions") or {}).items()
            }
            who = reactions.setdefault(data["reaction"], [])
            if data["action"] == "added" and data["user_id"] not in who:
                who.append(data["user_id"])
            if data["action"] == "removed" and data["user_id"] in who:
                who.remove(data["user_id"])
            if not who:
                del reactions[data["reaction"]]
            self.messages[data["message_id"]] = {**msg, "reactions": reactions}

    def state(self) -> Snapshot:
        return snapshot(self.messages)
