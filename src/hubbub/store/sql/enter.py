"""Trust mode's first use by reading: users, public rooms and memberships created for many
``(room_id, user_id, username)`` at once, with the log of it (rules: ``Rooms.enter_rooms`` in
``store/roles.py``).

A connect storm in trust mode is made of these (every new user's first stream creates the user
and joins the room), batched per loop tick. Like the send path (``append.py``) the statements
are ``batch.py``'s: plain SQL on the ``sqlite3`` driver in the writer thread, SQLAlchemy on
PostgreSQL, one round trip per kind of statement whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence

from hubbub.changes import Change, Pending
from hubbub.encoding import line_safe_json
from hubbub.models import Room, is_personal, utc_now
from hubbub.store.sql.batch import BatchSql, run_batch
from hubbub.store.sql.engine import Database
from hubbub.store.sql.rows import entered, room_of

Entered = list[tuple[Room, list[Change]]]


async def enter_rooms(db: Database, items: Sequence[tuple[str, str, str]]) -> Entered:
    return await run_batch(db, lambda sql: enter(sql, items))


def enter(sql: BatchSql, items: Sequence[tuple[str, str, str]]) -> Entered:
    """The whole batch in the caller's transaction. A missing room is created public by the
    first item that names it (its admin); a user joins a public room once (the first item of
    a repeated pair); a private room is never joined here. Each item gets its room and the
    changes its join logged (none for a repeat, a member, or a private room)."""
    if not items:
        return []
    now = utc_now()
    sql.ensure_users(sorted({u for _, u, _ in items}), now)
    locked = {r.id: r for r in sql.lock_rooms(sorted({r for r, _, _ in items}))}
    creators: dict[str, str] = {}
    for r, u, _ in items:
        if r not in locked:
            creators.setdefault(r, u)
    created: set[str] = set()
    if creators:
        sql.create_rooms(list(creators.items()), now)
        fresh = {r.id: r for r in sql.lock_rooms(sorted(creators))}
        created = {
            r for r, row in fresh.items() if row.created_by == creators[r] and row.last_rev == 0
        }
        locked.update(fresh)
    already = sql.memberships(sorted({(r, u) for r, u, _ in items if r in locked}))
    joining: dict[tuple[str, str], tuple[str, str]] = {}  # (room, user) → role, name
    for r, u, name in items:
        row = locked.get(r)
        if row is None or (r, u) in already or (r, u) in joining:
            continue
        if r in created and creators[r] == u:
            joining[(r, u)] = ("admin", name)
        elif row.visibility == "public":
            joining[(r, u)] = ("member", name)
    per_pair: dict[tuple[str, str], list[Change]] = {}
    if joining:
        sql.add_members([(r, u, role) for (r, u), (role, _) in joining.items()], now)
        pending: list[Pending] = []
        for (r, u), (_, name) in joining.items():
            pending += entered(room_of(locked[r]), u, name)
        logged = _log(sql, now, pending, {r: row.last_rev for r, row in locked.items()})
        for pair, at in zip(joining, range(0, len(logged), 2), strict=True):
            per_pair[pair] = logged[at : at + 2]  # member_joined, room_added
        revs = {c.room_id: c.rev for c in logged if c.rev is not None}
        sql.set_heads([(r, locked[r].last_seq, rev) for r, rev in sorted(revs.items())])
    out: Entered = []
    for r, u, _ in items:
        out.append((room_of(locked[r]), per_pair.pop((r, u), [])))
    return out


def _log(sql: BatchSql, now: str, pending: Sequence[Pending], revs: dict[str, int]) -> list[Change]:
    """Positions for all, and the next ``rev`` of its room for each room change, in order."""
    position = sql.take_positions(len(pending))
    done: list[Change] = []
    for p in pending:
        rev = None
        if not is_personal(p.room_id):
            rev = revs[p.room_id] = revs[p.room_id] + 1
        done.append(Change(p.room_id, p.name, line_safe_json(p.payload), position, rev, p.ref))
        position += 1
    sql.insert_changes(now, done)
    return done
