"""The ``Accounts`` role's contract (``store/roles.py``), on every backend."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from hubbub.store.sql import SqlStore
from tests.contract.store_fixtures import poison, sql, store_fixture, store_url_fixture  # noqa: F401


async def test_users_by_id_and_name(store: SqlStore) -> None:
    s = store
    alice = await s.accounts.create_user("Alice", "hash-a")
    assert await s.accounts.user_by_id(alice.id) == alice
    assert await s.accounts.user_by_name("Alice") == (alice, "hash-a")
    assert await s.accounts.password_hash(alice.id) == "hash-a"
    assert await s.accounts.user_by_id("missing") is None
    assert await s.accounts.user_by_name("nobody") is None
    assert await s.accounts.password_hash("missing") is None


async def test_user_by_name_is_exact_first_then_regardless_of_case(store: SqlStore) -> None:
    s = store
    alice = await s.accounts.create_user("Alice", "hash-a")
    await s.accounts.ensure_user("alice")  # trust mode's "alice": no password, no name key
    exact = await s.accounts.user_by_name("alice")
    assert exact is not None and exact[0].id == "alice" and exact[1] is None
    assert await s.accounts.user_by_name("ALICE") == (alice, "hash-a")
    assert await s.accounts.user_by_name("Alice") == (alice, "hash-a")


async def test_a_taken_name_is_refused(store: SqlStore) -> None:
    s = store
    await s.accounts.create_user("Bob", "hash")
    with pytest.raises(sa.exc.IntegrityError):
        await s.accounts.create_user("Bob", "other")
    with pytest.raises(sa.exc.IntegrityError):
        await s.accounts.create_user("BOB", "other")  # the same regardless of case
    found = await s.accounts.user_by_name("bob")
    assert found is not None and found[0].username == "Bob"


async def test_ensure_user_is_idempotent(store: SqlStore) -> None:
    s = store
    await s.accounts.ensure_user("guest1")
    await s.accounts.ensure_user("guest1")
    user = await s.accounts.user_by_id("guest1")
    assert user is not None and user.username == "guest1"
    assert await s.accounts.password_hash("guest1") is None
    assert await sql(s, "SELECT count(*) FROM users WHERE id = 'guest1'") == 1


# sessions -------------------------------------------------------------------------------------


async def test_sessions_create_and_revoke(store: SqlStore) -> None:
    s = store
    user = await s.accounts.create_user("carol", "h")
    before = time.time()
    rec = await s.accounts.create_session(user.id, 60)
    assert (rec.user_id, rec.revoked) == (user.id, False)
    assert before + 60 <= rec.expires_at <= time.time() + 60
    assert await s.accounts.session(rec.id) == rec
    await s.accounts.revoke_session(rec.id)
    revoked = await s.accounts.session(rec.id)
    assert revoked is not None and revoked.revoked
    await s.accounts.revoke_session(rec.id)  # a repeat does nothing
    await s.accounts.revoke_session("missing")
    assert await s.accounts.session("missing") is None


async def test_revoke_sessions_keeps_one_and_names_the_live_ones_it_ended(store: SqlStore) -> None:
    s = store
    user = await s.accounts.create_user("dave", "h")
    other = await s.accounts.create_user("erin", "h")
    a, b, c = [await s.accounts.create_session(user.id, 60) for _ in range(3)]
    expired = await s.accounts.create_session(user.id, -1)
    theirs = await s.accounts.create_session(other.id, 60)
    assert sorted(await s.accounts.revoke_sessions(user.id, keep=b.id)) == sorted([a.id, c.id])
    assert await s.accounts.revoke_sessions(user.id, keep=b.id) == []  # nothing live is left
    states = {x.id: await s.accounts.session(x.id) for x in (a, b, c, expired, theirs)}
    assert {k: v.revoked for k, v in states.items() if v is not None} == {
        a.id: True,
        b.id: False,
        c.id: True,
        expired.id: False,  # not live: left as it was
        theirs.id: False,
    }
    assert await s.accounts.revoke_sessions(user.id) == [b.id]


async def test_set_password_revokes_the_other_sessions(store: SqlStore) -> None:
    s = store
    user = await s.accounts.create_user("fay", "old")
    keep = await s.accounts.create_session(user.id, 60)
    other = await s.accounts.create_session(user.id, 60)
    assert await s.accounts.set_password(user.id, "new", keep=keep.id) == [other.id]
    assert await s.accounts.password_hash(user.id) == "new"
    kept, ended = await s.accounts.session(keep.id), await s.accounts.session(other.id)
    assert kept is not None and not kept.revoked
    assert ended is not None and ended.revoked


async def test_set_password_is_one_transaction(store: SqlStore) -> None:
    """If revoking the sessions fails, the password is not changed either."""
    s = store
    user = await s.accounts.create_user("gus", "old")
    session = await s.accounts.create_session(user.id, 60)
    await poison(s, "sessions", "NEW.revoked", event="UPDATE")
    with pytest.raises(sa.exc.DBAPIError):
        await s.accounts.set_password(user.id, "new")
    assert await s.accounts.password_hash(user.id) == "old"
    rec = await s.accounts.session(session.id)
    assert rec is not None and not rec.revoked


# refresh tokens and tickets -------------------------------------------------------------------


async def test_a_refresh_token_used_twice_is_reused(store: SqlStore) -> None:
    s = store
    user = await s.accounts.create_user("hal", "h")
    session = await s.accounts.create_session(user.id, 60)
    await s.accounts.add_refresh_token("t1", session.id, 60)
    assert await s.accounts.use_refresh_token("t1") == ("ok", session)
    assert await s.accounts.use_refresh_token("t1") == ("reused", session)
    assert await s.accounts.use_refresh_token("unknown") is None
    await s.accounts.add_refresh_token("t2", session.id, -1)
    assert await s.accounts.use_refresh_token("t2") is None  # expired
    await s.accounts.revoke_session(session.id)
    await s.accounts.add_refresh_token("t3", session.id, 60)
    used = await s.accounts.use_refresh_token("t3")  # the caller checks the session
    assert used is not None and used[0] == "ok" and used[1].revoked


async def test_a_ticket_is_single_use(store: SqlStore) -> None:
    s = store
    user = await s.accounts.create_user("ida", "h")
    session = await s.accounts.create_session(user.id, 60)
    await s.accounts.add_ticket("k1", user.id, session.id, 30)
    assert await s.accounts.consume_ticket("k1") == (user.id, session.id)
    assert await s.accounts.consume_ticket("k1") is None
    assert await s.accounts.consume_ticket("unknown") is None
    await s.accounts.add_ticket("k2", user.id, None, 30)  # an identity without a session
    assert await s.accounts.consume_ticket("k2") == (user.id, None)


async def test_an_expired_ticket_is_refused_and_swept(store: SqlStore) -> None:
    s = store
    user = await s.accounts.create_user("jay", "h")
    await s.accounts.add_ticket("late", user.id, None, -1)
    assert await s.accounts.consume_ticket("late") is None
    await s.accounts.add_ticket("stale", user.id, None, -1)
    await s.accounts.add_ticket("fresh", user.id, None, 30)  # sweeps the expired ones
    assert await sql(s, "SELECT count(*) FROM tickets") == 1


async def test_a_ticket_ends_with_its_session(store: SqlStore) -> None:
    s = store
    user = await s.accounts.create_user("kim", "h")
    a = await s.accounts.create_session(user.id, 60)
    b = await s.accounts.create_session(user.id, 60)
    expired = await s.accounts.create_session(user.id, -1)
    await s.accounts.add_ticket("ka", user.id, a.id, 30)
    await s.accounts.add_ticket("kb", user.id, b.id, 30)
    await s.accounts.add_ticket("kx", user.id, expired.id, 30)
    await s.accounts.revoke_session(a.id)
    await sql(s, "UPDATE sessions SET revoked = :t WHERE id = :id", t=True, id=b.id)
    assert await s.accounts.consume_ticket("ka") is None  # dropped with the session
    assert await s.accounts.consume_ticket("kb") is None  # still there, session ended
    assert await s.accounts.consume_ticket("kx") is None  # session expired
    await s.accounts.add_ticket("kc", user.id, None, 30)
    c = await s.accounts.create_session(user.id, 60)
    await s.accounts.add_ticket("kd", user.id, c.id, 30)
    await s.accounts.revoke_sessions(user.id)
    assert await s.accounts.consume_ticket("kd") is None
    assert await s.accounts.consume_ticket("kc") == (user.id, None)


async def test_provision_user_creates_renames_and_refuses_a_taken_name(store: SqlStore) -> None:
    s = store
    user, created = await s.accounts.provision_user("ext-1", "Carol")
    assert created and (user.id, user.username) == ("ext-1", "Carol")
    again, created = await s.accounts.provision_user("ext-1", "Carol")
    assert not created and again.id == "ext-1"
    renamed, created = await s.accounts.provision_user("ext-1", "Caroline")
    assert not created and renamed.username == "Caroline"
    found = await s.accounts.user_by_id("ext-1")
    assert found is not None and found.username == "Caroline"
    await s.accounts.create_user("Dave", "hash")
    with pytest.raises(sa.exc.IntegrityError):
        await s.accounts.provision_user("ext-2", "Dave")
    assert await s.accounts.user_by_id("ext-2") is None  # nothing changed
    with pytest.raises(sa.exc.IntegrityError):
        await s.accounts.provision_user("ext-1", "Dave")
    found = await s.accounts.user_by_id("ext-1")
    assert found is not None and found.username == "Caroline"


async def test_delete_user_takes_sessions_tokens_and_tickets_along(store: SqlStore) -> None:
    s = store
    erin = await s.accounts.create_user("Erin", "hash")
    live = await s.accounts.create_session(erin.id, 3600)
    gone = await s.accounts.create_session(erin.id, 3600)
    await s.accounts.revoke_session(gone.id)
    await s.accounts.add_refresh_token("refresh-hash", live.id, 3600)
    await s.accounts.add_ticket("ticket-hash", erin.id, live.id, 60)
    assert await s.accounts.delete_user(erin.id) == [live.id]
    assert await s.accounts.user_by_id(erin.id) is None
    assert await s.accounts.session(live.id) is None
    assert await s.accounts.use_refresh_token("refresh-hash") is None
    assert await s.accounts.consume_ticket("ticket-hash") is None
    assert await s.accounts.delete_user(erin.id) is None
    # the name is free again
    assert (await s.accounts.create_user("Erin", "hash2")).username == "Erin"
