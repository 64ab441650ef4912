"""In-order, exactly-once rules without any I/O."""

from __future__ import annotations

import random

from hubbub.encoding import Event
from hubbub.subscription import RoomSequencer, hand_off


def ev(seq: int | None, name: str = "message") -> Event:
    return Event("r", name, b"{}", seq)


def seqs(events: list[Event]) -> list[int | None]:
    return [e.seq for e in events]


def test_in_order_events_pass_straight_through() -> None:
    s = RoomSequencer()
    assert s.start(0) == []
    assert seqs(s.accept(ev(1))) == [1]
    assert seqs(s.accept(ev(2))) == [2]


def test_duplicates_and_old_events_are_dropped() -> None:
    s = RoomSequencer()
    s.start(5)
    assert s.accept(ev(3)) == []
    assert s.accept(ev(5)) == []
    assert seqs(s.accept(ev(6))) == [6]
    assert s.accept(ev(6)) == []


def test_out_of_order_is_held_then_released_in_order() -> None:
    s = RoomSequencer()
    s.start(0)
    assert s.accept(ev(3)) == []
    assert s.accept(ev(2)) == []
    assert s.missing() == (0, 2)
    assert seqs(s.accept(ev(1))) == [1, 2, 3]
    assert s.missing() is None


def test_hole_filled_from_the_store() -> None:
    s = RoomSequencer()
    s.start(10)
    s.accept(ev(14))
    assert s.missing() == (10, 14)
    assert seqs(s.fill([ev(11), ev(12), ev(13)])) == [11, 12, 13, 14]
    assert s.head == 14


def test_events_before_head_is_known_are_held_and_filtered() -> None:
    s = RoomSequencer()
    assert s.accept(ev(4)) == []
    assert s.accept(ev(5)) == []
    assert seqs(s.start(4)) == [5]


def test_named_events_are_never_held() -> None:
    s = RoomSequencer()
    assert seqs(s.accept(ev(None, "typing"))) == [None]


def test_random_order_with_duplicates_delivers_each_once_in_order() -> None:
    rng = random.Random(7)
    stream = list(range(1, 501)) * 2
    rng.shuffle(stream)
    s = RoomSequencer()
    s.start(0)
    out: list[int | None] = []
    for n in stream:
        out += seqs(s.accept(ev(n)))
    assert out == list(range(1, 501))


def test_hand_off_skips_what_the_replay_sent() -> None:
    pending = [ev(8), ev(9), ev(None, "typing"), ev(10), ev(11)]
    out, last = hand_off(9, pending)
    assert seqs(out) == [None, 10, 11]
    assert last == 11
