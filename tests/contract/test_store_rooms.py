"""The ``Rooms`` role's contract (``store/roles.py``), on every backend."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hubbub.changes import Change
from hubbub.store.sql import SqlStore
from tests.contract.store_fixtures import (  # noqa: F401
    req,
    revs,
    store_fixture,
    store_url_fixture,
)


def names(changes: list[Change]) -> list[tuple[str, str, int | None]]:
    return [(c.room_id, c.name, c.rev) for c in changes]


async def test_create_room_makes_the_creator_admin_and_logs_it(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("own")
    room, logged = await s.rooms.create_room("Plans", "private", "own", room_id="plans")
    assert (room.id, room.name, room.visibility, room.created_by, room.last_seq) == (
        "plans",
        "Plans",
        "private",
        "own",
        0,
    )
    assert names(logged) == [("plans", "member_joined", 1), ("@own", "room_added", None)]
    assert await s.rooms.room("plans") == room
    assert await s.rooms.membership("plans", "own") == "admin"
    assert await s.log.heads(["plans"]) == {"plans": 1}
    fresh, _ = await s.rooms.create_room("No id", "public", "own")
    assert fresh.id and fresh.id != "plans"


async def test_create_room_with_a_taken_id_stores_nothing(store: SqlStore) -> None:
    s = store
    for u in ("own", "other"):
        await s.accounts.ensure_user(u)
    first, _ = await s.rooms.create_room("First", "public", "own", room_id="taken")
    with pytest.raises(sa.exc.IntegrityError):
        await s.rooms.create_room("Second", "private", "other", room_id="taken")
    assert await s.rooms.room("taken") == first
    assert [m.user_id for m in await s.rooms.members("taken")] == ["own"]
    assert revs(await s.log.room_log("taken", 0, 10)) == [1]


async def test_room_membership_and_room_for(store: SqlStore) -> None:
    s = store
    for u in ("own", "out"):
        await s.accounts.ensure_user(u)
    room, _ = await s.rooms.create_room("R", "public", "own", room_id="r")
    assert await s.rooms.room_for("r", "own") == (room, "admin")
    assert await s.rooms.room_for("r", "out") == (room, None)
    assert await s.rooms.room_for("missing", "own") is None
    assert await s.rooms.membership("r", "out") is None
    assert await s.rooms.membership("missing", "own") is None
    assert await s.rooms.room("missing") is None


async def test_rooms_for_lists_public_and_own_rooms_with_unread(store: SqlStore) -> None:
    s = store
    for u in ("a", "b"):
        await s.accounts.ensure_user(u)
    await s.rooms.create_room("Pub", "public", "a", room_id="pub")
    await s.rooms.create_room("Mine", "private", "a", room_id="mine")
    await s.rooms.create_room("Theirs", "private", "b", room_id="theirs")
    await s.rooms.create_room("Empty", "public", "b", room_id="empty")
    await s.rooms.add_member("theirs", "a")
    await s.messages.append_batch([req("theirs", "b", f"t{i}") for i in range(3)])
    await s.messages.append_batch([req("pub", "a", "p1"), req("pub", "a", "p2")])
    await s.messages.mark_read("theirs", "a", 1)
    views = {v.room.id: v for v in await s.rooms.rooms_for("a")}
    assert set(views) == {"pub", "mine", "theirs", "empty"}
    # oldest first (rooms made in the same millisecond: by id)
    assert list(views) == [
        v.room.id for v in sorted(views.values(), key=lambda v: (v.room.created_at, v.room.id))
    ]
    assert (views["theirs"].member, views["theirs"].role, views["theirs"].unread) == (
        True,
        "member",
        2,
    )
    last = views["theirs"].last_message
    assert last is not None and (last.seq, last.text) == (3, "t2")
    assert (views["pub"].role, views["pub"].unread) == ("admin", 0)  # own messages are read
    assert (views["empty"].member, views["empty"].role, views["empty"].unread) == (
        False,
        None,
        None,
    )
    assert views["empty"].last_message is None
    # b sees public rooms and their own private one, never a's private room
    seen_by_b = await s.rooms.rooms_for("b")
    assert {v.room.id for v in seen_by_b} == {"pub", "theirs", "empty"}
    assert seen_by_b == sorted(seen_by_b, key=lambda v: (v.room.created_at, v.room.id))


async def test_room_ids_of_and_members(store: SqlStore) -> None:
    s = store
    for u in ("a", "b", "c"):
        await s.accounts.ensure_user(u)
    await s.rooms.create_room("One", "public", "a", room_id="one")
    await s.rooms.create_room("Two", "public", "b", room_id="two")
    await s.rooms.add_member("one", "c")
    await s.rooms.add_member("one", "b", role="admin")
    assert sorted(await s.rooms.room_ids_of("b")) == ["one", "two"]
    assert await s.rooms.room_ids_of("c") == ["one"]
    assert await s.rooms.room_ids_of("nobody") == []
    members = await s.rooms.members("one")
    assert [(m.user_id, m.username, m.role) for m in members] == [
        ("a", "a", "admin"),
        ("c", "c", "member"),
        ("b", "b", "admin"),
    ]  # in joining order
    assert await s.rooms.members("missing") == []


async def test_add_and_remove_member_return_and_log_their_changes(store: SqlStore) -> None:
    s = store
    for u in ("own", "v"):
        await s.accounts.ensure_user(u)
    await s.rooms.create_room("R", "public", "own", room_id="r")
    joined = await s.rooms.add_member("r", "v", role="admin")
    assert names(joined) == [("r", "member_joined", 2), ("@v", "room_added", None)]
    assert await s.rooms.add_member("r", "v") == []  # a repeat keeps the first role
    assert await s.rooms.membership("r", "v") == "admin"
    left = await s.rooms.remove_member("r", "v")
    assert names(left) == [("r", "member_left", 3), ("@v", "room_removed", None)]
    assert await s.rooms.remove_member("r", "v") == []
    assert await s.rooms.membership("r", "v") is None
    logged = await s.log.room_log("r", 0, 10)
    assert [(e.name, e.rev) for e in logged] == [
        ("member_joined", 1),
        ("member_joined", 2),
        ("member_left", 3),
    ]
    assert [e.position for e in logged] == sorted(e.position for e in logged)


async def test_update_room(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("own")
    await s.rooms.create_room("Old", "public", "own", room_id="u")
    done = await s.rooms.update_room("u", name="New", visibility=None)
    assert done is not None
    room, logged = done
    assert (room.name, room.visibility) == ("New", "public")
    assert names(logged) == [("u", "room_updated", 2)]
    done = await s.rooms.update_room("u", name="New", visibility="public")  # as it is
    assert done is not None and done[1] == [] and done[0] == room
    done = await s.rooms.update_room("u", name=None, visibility="private")
    assert done is not None and done[0].visibility == "private"
    assert names(done[1]) == [("u", "room_updated", 3)]
    assert await s.rooms.room("u") == done[0]
    assert await s.rooms.update_room("missing", name="x", visibility=None) is None


async def test_enter_room_trust_rules(store: SqlStore) -> None:
    """The first user of a new room creates it (admin), a public room is joined, a private room
    the user is not in is returned unchanged and not joined."""
    s = store
    room, logged = await s.rooms.enter_room("town", "ann", "Ann")
    assert (room.id, room.visibility, room.created_by) == ("town", "public", "ann")
    assert names(logged) == [("town", "member_joined", 1), ("@ann", "room_added", None)]
    assert await s.rooms.membership("town", "ann") == "admin"
    user = await s.accounts.user_by_id("ann")  # created on the way
    assert user is not None
    again = await s.rooms.enter_room("town", "ann")
    assert again == (room, [])
    _, joined = await s.rooms.enter_room("town", "ben")
    assert [c.name for c in joined] == ["member_joined", "room_added"]
    assert await s.rooms.membership("town", "ben") == "member"
    await s.rooms.create_room("Secret", "private", "ann", room_id="secret")
    secret, none = await s.rooms.enter_room("secret", "ben")
    assert (secret.id, secret.visibility, none) == ("secret", "private", [])
    assert await s.rooms.membership("secret", "ben") is None


async def test_first_use_of_many_rooms_in_one_batch(store: SqlStore) -> None:
    """Trust mode's first use, batched: the first user of a new room creates it (admin), the
    rest join; each join is logged once; a private room is not joined."""
    s = store
    await s.accounts.ensure_user("own")
    await s.rooms.create_room("secret", "private", "own", "priv")
    out = await s.rooms.enter_rooms(
        [
            ("fresh", "a", "a"),
            ("fresh", "b", "b"),
            ("fresh", "a", "a"),  # twice in one batch: one join
            ("priv", "c", "c"),
        ]
    )
    assert [len(changes) for _, changes in out] == [2, 2, 0, 0]
    assert out[0][0].created_by == "a"
    assert {m.user_id: m.role for m in await s.rooms.members("fresh")} == {
        "a": "admin",
        "b": "member",
    }
    assert await s.rooms.membership("priv", "c") is None
    assert revs(await s.log.room_log("fresh", 0, 10)) == [1, 2]
    again = await s.rooms.enter_rooms([("fresh", "b", "b")])
    assert again[0][1] == []
    assert await s.rooms.enter_rooms([]) == []
