"""In-order, exactly-once rules without any I/O: the room sequencer and the resume engine."""

from __future__ import annotations

import random

from hubbub.encoding import Event
from hubbub.subscription import PositionSequencer, Resume, RoomSequencer


def ev(rev: int | None, name: str = "message", room: str = "r") -> Event:
    """A stored event of room ``room`` at ``rev`` (a message's seq is its rev here)."""
    if name == "message":
        return Event(room, name, b"{}", rev, rev=rev, position=None if rev is None else rev)
    return Event(room, name, b"{}", rev=rev, position=None if rev is None else rev)


def revs(events: list[Event]) -> list[int | None]:
    return [e.rev for e in events]


def test_in_order_events_pass_straight_through() -> None:
    s = RoomSequencer()
    assert s.start(0) == []
    assert revs(s.accept(ev(1))) == [1]
    assert revs(s.accept(ev(2, "message_edited"))) == [2]


def test_duplicates_and_old_events_are_dropped() -> None:
    s = RoomSequencer()
    s.start(5)
    assert s.accept(ev(3)) == []
    assert s.accept(ev(5, "reaction")) == []
    assert revs(s.accept(ev(6))) == [6]
    assert s.accept(ev(6)) == []


def test_out_of_order_changes_are_held_then_released_in_order() -> None:
    s = RoomSequencer()
    s.start(0)
    assert s.accept(ev(3, "message_deleted")) == []
    assert s.accept(ev(2, "message_edited")) == []
    assert s.missing() == (0, 2)
    assert revs(s.accept(ev(1))) == [1, 2, 3]
    assert s.missing() is None


def test_hole_filled_from_the_store() -> None:
    s = RoomSequencer()
    s.start(10)
    s.accept(ev(14))
    assert s.missing() == (10, 14)
    assert revs(s.fill([ev(11), ev(12, "reaction"), ev(13, "member_left")])) == [11, 12, 13, 14]
    assert s.head == 14


def test_events_before_head_is_known_are_held_and_filtered() -> None:
    s = RoomSequencer()
    assert s.accept(ev(4)) == []
    assert s.accept(ev(5)) == []
    assert revs(s.start(4)) == [5]


def test_live_only_events_are_never_held() -> None:
    s = RoomSequencer()
    assert [e.name for e in s.accept(ev(None, "typing"))] == ["typing"]


def test_random_order_with_duplicates_delivers_each_once_in_order() -> None:
    rng = random.Random(7)
    stream = list(range(1, 501)) * 2
    rng.shuffle(stream)
    s = RoomSequencer()
    s.start(0)
    out: list[int | None] = []
    for n in stream:
        out += revs(s.accept(ev(n, "message" if n % 3 else "message_edited")))
    assert out == list(range(1, 501))


# the resume engine ---------------------------------------------------------------------------


def test_room_resume_skips_what_the_replay_sent() -> None:
    r = Resume(7, room_id="r")
    assert revs(r.replayed([ev(8), ev(9, "reaction")])) == [8, 9]
    pending = [ev(8), ev(9, "reaction"), ev(None, "typing"), ev(10), ev(11, "message_deleted")]
    assert not r.behind(pending)
    assert [e.name for e in r.hand_off(pending)] == ["typing", "message", "message_deleted"]
    assert r.cursor == 11


def test_room_resume_sees_a_hole_between_replay_and_live() -> None:
    """The race ``Hub.caught_up`` closes: the replay read up to rev 9, but the hub already
    passed on 10 and 11 before this connection queued; the queue starts at 12. Going live now
    would lose 10 and 11, so the engine says: read the store again."""
    r = Resume(0, room_id="r")
    r.replayed([ev(n) for n in range(1, 10)])
    assert r.behind([ev(12), ev(13)])
    r.replayed([ev(10), ev(11, "message_edited"), ev(12)])
    assert not r.behind([ev(12), ev(13)])
    assert revs(r.hand_off([ev(12), ev(13)])) == [13]


def test_a_replayed_event_arriving_live_later_is_not_sent_twice() -> None:
    r = Resume(0, room_id="r")
    r.replayed([ev(1), ev(2, "message_edited")])
    assert r.heads() == {"r": 2}  # the driver waits until the hub has passed on rev 2
    assert r.hand_off([ev(2, "message_edited")]) == []


def test_folded_page_still_advances_the_cursor() -> None:
    r = Resume(0, room_id="r")
    assert revs(r.replayed([ev(1), ev(3, "message_edited")], through=3)) == [1, 3]
    assert r.hand_off([ev(2, "message_edited")]) == []
    assert r.cursor == 3


def test_typing_of_the_user_themselves_is_not_handed_off() -> None:
    r = Resume(0, room_id="r", user_id="ann")
    typing = Event("r", "typing", b"{}", exclude="ann")
    assert r.hand_off([typing]) == []


def test_all_rooms_resume_by_position_across_rooms() -> None:
    r = Resume(100)
    page = [
        Event("a", "message", b"{}", 5, position=101, rev=5),
        Event("@ann", "room_added", b"{}", position=102),
        Event("b", "reaction", b"{}", position=104, rev=9),
    ]
    assert len(r.replayed(page)) == 3
    assert r.cursor == 104
    assert r.heads() == {"a": 5, "b": 9}
    pending = [
        Event("b", "reaction", b"{}", position=104, rev=9),
        Event("a", "message_edited", b"{}", position=105, rev=6),
        Event("@ann", "read", b"{}", position=106),
    ]
    assert [e.position for e in r.hand_off(pending)] == [105, 106]
    assert r.cursor == 106


# stream positions across rooms (/chat/events) -------------------------------------------------


def at(position: int, room: str = "a") -> Event:
    return Event(room, "message", b"{}", position, rev=position, position=position)


def positions(events: list[Event]) -> list[int | None]:
    return [e.position for e in events]


def test_positions_pass_in_order_and_hold_past_a_gap() -> None:
    s = PositionSequencer(10)
    assert positions(s.accept(at(11))) == [11]
    assert s.accept(at(14, "b")) == []  # 12 and 13: another node's, not arrived yet
    assert s.missing() == (11, 14)
    assert positions(s.accept(at(12))) == [12]
    assert positions(s.accept(at(13, "c"))) == [13, 14]
    assert s.missing() is None
    assert s.accept(at(12)) == []  # a late duplicate


def test_a_gap_of_other_rooms_positions_is_settled_from_the_store() -> None:
    """Positions 12-15 belong to rooms nobody here follows; 13 is ours but its broker copy is
    late: the store supplies it, and its late live copy is then dropped."""
    s = PositionSequencer(11)
    assert s.accept(at(16)) == []
    assert s.accept(at(18)) == []
    assert positions(s.fill(18, [at(13), at(17, "b")])) == [13, 16, 17, 18]
    assert s.accept(at(13)) == []
    assert positions(s.accept(at(19))) == [19]


def test_positions_shuffled_across_rooms_come_out_once_in_order() -> None:
    rng = random.Random(11)
    mine = sorted(rng.sample(range(1, 2000), 600))  # the followed rooms' positions
    arriving = [at(p) for p in mine] * 2
    rng.shuffle(arriving)
    s = PositionSequencer(0)
    out: list[int | None] = []
    for i, event in enumerate(arriving):
        out += positions(s.accept(event))
        if i % 50 == 49 and (gap := s.missing()) is not None:
            after, through = gap
            out += positions(s.fill(through, [at(p) for p in mine if after < p <= through]))
    if (gap := s.missing()) is not None:
        out += positions(s.fill(gap[1], [at(p) for p in mine if gap[0] < p <= gap[1]]))
    assert out == mine
