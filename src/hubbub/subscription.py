"""Ordering rules, with no I/O: in-order delivery per room and the resume hand-off.

The store is the source of truth and the broker only a doorbell. These small state machines
turn whatever the broker delivers (possibly late, duplicated, out of order or with holes) into
exactly-once, in-order delivery, for messages and every other stored change alike — both carry
the room's ``rev`` (see ``store/changelog.py``):

* :class:`RoomSequencer` (one per room per node): drops ``rev <= head``, passes ``head + 1``
  on, holds anything further ahead and reports the hole so the hub can read it from the store.
  Live-only events (typing, presence) have no ``rev`` and pass straight through.
* :class:`Resume` (one per resuming connection): the way from a client's cursor to live. The
  transport's driver (``transports/resume.py``) feeds it pages read from the store and, at the
  end, what the hub queued live meanwhile; it says what to send, what is a duplicate, and
  whether the live queue shows a hole that the store must fill first.
"""

from __future__ import annotations

from collections.abc import Iterable

from hubbub.encoding import Event


def release_run(held: dict[int, Event], head: int) -> tuple[int, list[Event]]:
    """Both sequencers' one step: drop what ``head`` already covers, then take the run of
    consecutive numbers after it; the new head and the run, in order."""
    for number in [n for n in held if n <= head]:
        del held[number]
    out: list[Event] = []
    while head + 1 in held:
        head += 1
        out.append(held.pop(head))
    return head, out


class RoomSequencer:
    __slots__ = ("head", "held")

    def __init__(self) -> None:
        self.head: int | None = None  # last rev passed on; None until known from the store
        self.held: dict[int, Event] = {}

    def start(self, head: int) -> list[Event]:
        """The store says ``head`` is the newest committed rev: release what can go now."""
        self.head = head
        return self._release()

    def accept(self, event: Event) -> list[Event]:
        """Events that may be delivered now, in order (an event without rev passes straight)."""
        rev = event.rev
        if rev is None:
            return [event]
        head = self.head
        if head is None or rev > head + 1:
            if head is None or rev > head:
                self.held.setdefault(rev, event)
            return []
        if rev <= head:
            return []
        self.head = rev
        if not self.held:
            return [event]
        return [event, *self._release()]

    def fill(self, events: Iterable[Event]) -> list[Event]:
        """Events read from the store to close a hole; returns what may go now."""
        for event in events:
            if event.rev is not None and self.head is not None and event.rev > self.head:
                self.held.setdefault(event.rev, event)
        return self._release()

    def missing(self) -> tuple[int, int] | None:
        """``(after, before)`` of the first hole, if events are held waiting for it."""
        if self.head is None or not self.held:
            return None
        return self.head, min(self.held)

    def _release(self) -> list[Event]:
        assert self.head is not None
        self.head, out = release_run(self.held, self.head)
        return out


class PositionSequencer:
    """Stream positions in order, for ``/chat/events`` (one per node).

    A ``/chat/events`` cursor is a stream position, and resuming from it replays what comes
    after it; so live delivery must follow position order too, or a client that has seen a
    later position and then drops skips an earlier one on resume (or gets a duplicate). Each
    room's events arrive in order (:class:`RoomSequencer`), but across rooms they do not: two
    nodes' publishes cross in the broker, and one node's writers publish concurrently.

    Every writer takes its positions from one counter row, so positions commit in order:
    when an event at position ``p`` arrives, every position below it is committed. Events are
    released in position order; one that arrives past a gap is held, and the gap is settled
    from the store (:meth:`missing`, :meth:`fill`): the entries of the followed rooms in it
    (those that never came, or not yet), the rest being other rooms' positions.
    """

    __slots__ = ("held", "released")

    def __init__(self, released: int = 0) -> None:
        self.released = released  # every position up to here has been passed on (or skipped)
        self.held: dict[int, Event] = {}

    def accept(self, event: Event) -> list[Event]:
        """Events that may be delivered now, in position order (none without a position
        should come here)."""
        position = event.position
        assert position is not None
        if position <= self.released:
            return []  # a duplicate, or settled from the store already
        if position != self.released + 1:
            self.held.setdefault(position, event)
            return []
        self.released = position
        if not self.held:
            return [event]
        return [event, *self._release()]

    def missing(self) -> tuple[int, int] | None:
        """``(after, through)``: the gap to settle from the store before the held can go."""
        if not self.held:
            return None
        return self.released, max(self.held)

    def fill(self, through: int, stored: Iterable[Event]) -> list[Event]:
        """The store's entries of the followed rooms with positions in ``(released,
        through]``: together with what is held, everything up to ``through``, in order."""
        merged = {e.position: e for e in stored if e.position is not None}
        for position in [p for p in self.held if p <= through]:
            merged.setdefault(position, self.held.pop(position))
        out = [merged[p] for p in sorted(merged) if p > self.released]
        self.released = max(self.released, through)
        return out + self._release()

    def rebase(self, released: int) -> None:
        """Start over at ``released`` (nothing held is delivered: its streams are cut)."""
        self.held.clear()
        self.released = released

    def _release(self) -> list[Event]:
        self.released, out = release_run(self.held, self.released)
        return out


class Resume:
    """From a cursor to live, each stored event exactly once.

    A room stream resumes by the room's ``rev`` (``room_id`` given); ``/chat/events`` by the
    stream position, and keeps each room's last ``rev`` too, so it can ask the hub to catch up
    with exactly what it replayed. The driver loop is::

        while True:
            page = read the store after resume.cursor
            send(resume.replayed(page, through=…))
            if the page was full: continue
            wait until the hub has passed on resume.heads()
            if resume.behind(hub.pending(conn)): continue   # the store has them now
            send(resume.hand_off(hub.go_live(conn))); break
    """

    __slots__ = ("by_position", "cursor", "revs", "room_id", "user_id", "user_level")

    def __init__(
        self,
        after: int,
        *,
        room_id: str | None = None,
        user_id: str | None = None,
        user_level: bool = False,
    ) -> None:
        self.room_id = room_id
        self.by_position = room_id is None
        self.cursor = after  # the rev (room) or position (all rooms) replayed through
        self.revs: dict[str, int] = {} if room_id is None else {room_id: after}
        self.user_id = user_id  # events excluding this user (typing) are not for this client
        self.user_level = user_level  # /chat/events or WebSocket (they get personal changes)

    def _seen(self, event: Event) -> bool:
        rev = event.rev
        if self.by_position:
            if event.position is not None and event.position <= self.cursor:
                return True
            return rev is not None and rev <= self.revs.get(event.room_id, -1)
        return rev is not None and rev <= self.revs.get(event.room_id, 0)

    def _note(self, event: Event) -> None:
        if event.rev is not None and event.rev > self.revs.get(event.room_id, 0):
            self.revs[event.room_id] = event.rev
        if self.by_position:
            if event.position is not None and event.position > self.cursor:
                self.cursor = event.position
        elif event.rev is not None and event.room_id == self.room_id:
            self.cursor = max(self.cursor, event.rev)

    def replayed(self, page: Iterable[Event], *, through: int | None = None) -> list[Event]:
        """A page read from the store, in order: what to send. ``through`` is where the page
        ended (its last rev or position) when folding left entries out."""
        out: list[Event] = []
        for event in page:
            if self._seen(event):
                continue
            self._note(event)
            out.append(event)
        if through is not None and through > self.cursor:
            self.cursor = through
            if self.room_id is not None:
                self.revs[self.room_id] = max(self.revs.get(self.room_id, 0), through)
        return out

    def heads(self) -> dict[str, int]:
        """Per room, the rev the hub must have passed on before this stream goes live."""
        return dict(self.revs)

    def behind(self, pending: Iterable[Event]) -> bool:
        """Whether what queued live starts past a hole (events committed after our last read
        but passed on by the hub before we looked): read the store again first."""
        if self.room_id is None:
            return False
        last = self.revs.get(self.room_id, 0)
        for event in pending:
            if event.rev is not None:
                return event.rev > last + 1
        return False

    def hand_off(self, pending: Iterable[Event]) -> list[Event]:
        """What queued live during the replay, minus what the replay already sent."""
        out: list[Event] = []
        for event in pending:
            if event.exclude is not None and event.exclude == self.user_id:
                continue
            if (
                self.user_level
                and self.user_id is not None
                and event.exclude_user_streams == self.user_id
            ):
                continue
            if self._seen(event):
                continue
            self._note(event)
            out.append(event)
        return out
