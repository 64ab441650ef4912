"""The ``Lookups`` role's contract (``store/roles.py``): many keys answer exactly what the
one-key reads answer, on every backend."""

from __future__ import annotations

import time

from hubbub.store.sql import SqlStore
from tests.contract.store_fixtures import poison, sql, store_fixture, store_url_fixture  # noqa: F401


async def test_accounts_named_resolve_as_trust_mode_does(store: SqlStore) -> None:
    s = store
    alice = await s.accounts.create_user("Alice", "hash-a")
    await s.accounts.ensure_user("alice")  # a trust-mode user named exactly "alice"
    found = await s.lookups.accounts_named(["alice", "ALICE", alice.id, "nobody"])
    assert found == {
        "alice": ("alice", "alice"),  # by id (and exact name) first
        "ALICE": (alice.id, "Alice"),  # else regardless of case
        alice.id: (alice.id, "Alice"),
    }


async def test_usernames_and_sessions(store: SqlStore) -> None:
    s = store
    bob = await s.accounts.create_user("Bob", None)
    session = await s.accounts.create_session(bob.id, 60)
    other = await s.accounts.create_session(bob.id, 60)
    await s.accounts.revoke_session(other.id)
    assert await s.lookups.usernames([bob.id, "missing"]) == {bob.id: "Bob"}
    found = await s.lookups.sessions([session.id, other.id, "missing"])
    assert found[session.id] == await s.accounts.session(session.id)
    assert found[other.id].revoked and set(found) == {session.id, other.id}
    assert found[session.id].expires_at > time.time()


async def test_room_access_members_and_rooms_of(store: SqlStore) -> None:
    s = store
    await s.rooms.enter_rooms([("r1", "ann", "ann"), ("r1", "ben", "ben"), ("r2", "ann", "ann")])
    await s.accounts.ensure_user("cat")
    private, _ = await s.rooms.create_room("P", "private", "cat", "p1")
    found = await s.lookups.room_access(
        [("r1", "ann"), ("r1", "cat"), ("p1", "cat"), ("p1", "ann"), ("nope", "ann")]
    )
    assert set(found) == {("r1", "ann"), ("r1", "cat"), ("p1", "cat"), ("p1", "ann")}
    for (room_id, user_id), (room, role) in found.items():
        assert (room, role) == await s.rooms.room_for(room_id, user_id)
    assert found[("r1", "cat")][1] is None and found[("p1", "cat")][1] == "admin"
    assert found[("p1", "cat")][0] == private
    ids = await s.lookups.member_ids(["r1", "p1", "nope"])
    assert ids == {
        "r1": [m.user_id for m in await s.rooms.members("r1")],
        "p1": ["cat"],
        "nope": [],
    }
    rooms_of = await s.lookups.room_ids_of(["ann", "ben", "nobody"])
    assert {k: sorted(v) for k, v in rooms_of.items()} == {
        "ann": ["r1", "r2"],
        "ben": ["r1"],
        "nobody": [],
    }
