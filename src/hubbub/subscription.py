"""Ordering rules, with no I/O: in-order delivery per room and the resume hand-off.

The store is the source of truth and the broker only a doorbell. These two small state
machines turn whatever the broker delivers (possibly late, duplicated, out of order or with
holes) into exactly-once, in-``seq``-order delivery:

* :class:`RoomSequencer` (one per room per node): drops ``seq <= head``, passes ``head + 1``
  on, holds anything further ahead and reports the hole so the hub can read it from the store.
* :func:`hand_off` (one per resuming connection): after replaying ``seq > cursor`` from the
  store, merges what arrived live during the replay, skipping what the replay already sent.
"""

from __future__ import annotations

from collections.abc import Iterable

from hubbub.encoding import Event


class RoomSequencer:
    __slots__ = ("head", "held")

    def __init__(self) -> None:
        self.head: int | None = None  # last seq passed on; None until known from the store
        self.held: dict[int, Event] = {}

    def start(self, head: int) -> list[Event]:
        """The store says ``head`` is the newest committed seq: release what can go now."""
        self.head = head
        return self._release()

    def accept(self, event: Event) -> list[Event]:
        """Events that may be delivered now, in order (an event without seq passes straight)."""
        seq = event.seq
        if seq is None:
            return [event]
        head = self.head
        if head is None or seq > head + 1:
            if head is None or seq > head:
                self.held.setdefault(seq, event)
            return []
        if seq <= head:
            return []
        self.head = seq
        if not self.held:
            return [event]
        return [event, *self._release()]

    def fill(self, events: Iterable[Event]) -> list[Event]:
        """Events read from the store to close a hole; returns what may go now."""
        for event in events:
            if event.seq is not None and self.head is not None and event.seq > self.head:
                self.held.setdefault(event.seq, event)
        return self._release()

    def missing(self) -> tuple[int, int] | None:
        """``(after, before)`` of the first hole, if events are held waiting for it."""
        if self.head is None or not self.held:
            return None
        return self.head, min(self.held)

    def _release(self) -> list[Event]:
        out: list[Event] = []
        held = self.held
        head = self.head
        assert head is not None
        for seq in [s for s in held if s <= head]:
            del held[seq]
        while head + 1 in held:
            head += 1
            out.append(held.pop(head))
        self.head = head
        return out


def hand_off(last_sent: int, pending: Iterable[Event]) -> tuple[list[Event], int]:
    """What of ``pending`` still has to be sent after a replay that ended at ``last_sent``."""
    out: list[Event] = []
    for event in pending:
        seq = event.seq
        if seq is None:
            out.append(event)
        elif seq > last_sent:
            out.append(event)
            last_sent = seq
    return out, last_sent
