"""The send path: a batch of messages in one write transaction, with trust mode's first use
(users, public rooms, memberships) and the log of it. Rules: ``Messages.append_batch`` in
``store/roles.py``.

Why a module of its own: this is the hot path. Each statement here is one round trip for the
whole batch, whatever its size; one more is a measurable cost on every commit. The statements
themselves are in ``batch.py`` (plain SQL on the ``sqlite3`` driver; SQLAlchemy on PostgreSQL).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import msgspec

from hubbub.changes import Change, Pending
from hubbub.encoding import line_safe_json
from hubbub.models import Message, is_personal, utc_now
from hubbub.store.base import AppendOutcome, AppendRequest, AppendResult
from hubbub.store.sql.batch import BatchSql, run_batch
from hubbub.store.sql.engine import Database, new_message_id
from hubbub.store.sql.rows import entered, room_of

_json_encode = msgspec.json.Encoder().encode


async def append_batch(
    db: Database, items: Sequence[AppendRequest], known: set[str]
) -> list[AppendResult]:
    """One write transaction for the batch (``batch.run_batch``)."""
    return await run_batch(db, lambda sql: append(sql, items, known))


def append(sql: BatchSql, items: Sequence[AppendRequest], known: set[str]) -> list[AppendResult]:
    """The whole batch in the caller's transaction: one round trip per kind of statement,
    whatever the batch size. ``known``: trust-mode users known to exist (not inserted again)."""
    now = utc_now()
    new_users = sorted({it.message.user_id for it in items if it.create_user} - known)
    if new_users:
        sql.ensure_users(new_users, now)  # remembered once committed: users stay
    room_ids = sorted({it.message.room_id for it in items})
    locked = {r.id: r for r in sql.lock_rooms(room_ids)}
    creators: dict[str, str] = {}
    for it in items:
        rid = it.message.room_id
        if rid not in locked and it.create_room:
            creators.setdefault(rid, it.message.user_id)
    created_rooms: set[str] = set()
    if creators:
        sql.create_rooms(list(creators.items()), now)
        fresh = {r.id: r for r in sql.lock_rooms(sorted(creators))}
        created_rooms = {rid for rid, r in fresh.items() if r.last_rev == 0}
        if created_rooms:
            sql.add_members([(r, creators[r], "admin") for r in sorted(created_rooms)], now)
        locked.update(fresh)
    membership = sql.memberships(sorted({(it.message.room_id, it.message.user_id) for it in items}))
    cmids = [it.message.client_msg_id for it in items if it.message.client_msg_id]
    stored: dict[tuple[str, str | None], Message] = {}
    if cmids:
        stored = {(m.user_id, m.client_msg_id): m for m in sql.stored(cmids)}

    results: list[AppendResult | None] = [None] * len(items)
    accepted: dict[str, list[int]] = defaultdict(list)
    first_in_batch: dict[tuple[str, str], int] = {}
    repeats: list[tuple[int, int]] = []
    joins: dict[tuple[str, str], int] = {}
    for i, it in enumerate(items):
        m = it.message
        room = locked.get(m.room_id)
        if room is None:
            results[i] = AppendResult(AppendOutcome.NO_ROOM)
            continue
        key_member = (m.room_id, m.user_id)
        if key_member not in membership and not it.system:
            if room.visibility == "private":
                results[i] = AppendResult(AppendOutcome.HIDDEN)
                continue
            if not it.join_public:
                results[i] = AppendResult(AppendOutcome.NOT_MEMBER)
                continue
            membership.add(key_member)
            joins[key_member] = i
        if m.client_msg_id:
            key = (m.user_id, m.client_msg_id)
            if key in stored:
                results[i] = repeat(stored[key], m)
                continue
            if key in first_in_batch:
                repeats.append((i, first_in_batch[key]))
                continue
            first_in_batch[key] = i
        accepted[m.room_id].append(i)
    if joins:
        sql.add_members([(r, u, "member") for r, u in joins], now)

    # The log, in publish order: each item's membership changes (trust mode's first use),
    # then its message. Positions and revs follow that order.
    logged: dict[int, list[Pending]] = defaultdict(list)
    if joins or created_rooms:
        entering = [(r, creators[r]) for r in sorted(created_rooms)] + list(joins)
        for r, u in entering:
            found = joins.get((r, u))
            i = (
                found
                if found is not None
                else next(j for j, it in enumerate(items) if it.message.room_id == r)
            )
            logged[i] += entered(room_of(locked[r]), u, items[i].message.username)

    built: dict[int, Message] = {}
    seqs: dict[str, int] = {}
    for room_id, idxs in accepted.items():
        seq = locked[room_id].last_seq
        for i in idxs:
            seq += 1
            m = items[i].message
            built[i] = Message(
                id=new_message_id(),
                room_id=room_id,
                seq=seq,
                user_id=m.user_id,
                username=m.username,
                type=m.type,
                text=m.text,
                created_at=now,
                timestamp=m.timestamp,
                client_msg_id=m.client_msg_id,
                file=m.file,
            )
        seqs[room_id] = seq
    total = len(built) + sum(len(v) for v in logged.values())
    if total:
        position = sql.take_positions(total)
        revs = {r: row.last_rev for r, row in locked.items()}
        done: list[Change] = []
        item_changes: dict[int, tuple[Change, ...]] = {}
        item_rev: dict[int, tuple[int, int]] = {}
        for i in sorted(set(built) | set(logged)):
            mine: list[Change] = []
            for p in logged.get(i, ()):
                rev = None
                if not is_personal(p.room_id):
                    rev = revs[p.room_id] = revs[p.room_id] + 1
                mine.append(
                    Change(p.room_id, p.name, line_safe_json(p.payload), position, rev, p.ref)
                )
                position += 1
            done += mine
            item_changes[i] = tuple(mine)
            if i in built:
                rid = built[i].room_id
                revs[rid] += 1
                item_rev[i] = (position, revs[rid])
                position += 1
        sql.insert_changes(now, done)
        rows: list[tuple[Any, ...]] = []
        for i in sorted(set(built) | set(logged)):
            if i in built:
                msg = built[i]
                pos, rev = item_rev[i]
                rows.append(message_row(msg, pos, rev))
                results[i] = AppendResult(
                    AppendOutcome.CREATED,
                    msg,
                    position=pos,
                    room_created=msg.room_id in created_rooms,
                    rev=rev,
                    changes=item_changes[i],
                )
            elif item_changes.get(i) and (earlier := results[i]) is not None:
                results[i] = msgspec.structs.replace(earlier, changes=item_changes[i])
        touched = {c.room_id for c in done if c.rev is not None} - set(seqs)
        heads = [(r, s, revs[r]) for r, s in seqs.items()]
        heads += [(r, locked[r].last_seq, revs[r]) for r in sorted(touched)]
        sql.set_heads(heads)
        if rows:
            sql.insert_messages(rows)
            sql.read_up_to([(m.room_id, m.user_id, m.seq) for m in built.values()])
    for i, first in repeats:
        results[i] = repeat(built[first], items[i].message)
    return [r for r in results if r is not None]


def message_row(msg: Message, position: int, rev: int) -> tuple[Any, ...]:
    """In ``batch.MESSAGE_COLUMNS`` order."""
    return (
        position,
        rev,
        msg.id,
        msg.room_id,
        msg.seq,
        msg.user_id,
        msg.username,
        msg.type,
        msg.text,
        msg.created_at,
        None if msg.timestamp is None else _json_encode(msg.timestamp).decode(),
        msg.client_msg_id,
        None,
        False,
        None if msg.file is None else _json_encode(msg.file).decode(),
    )


def repeat(original: Message, new: Any) -> AppendResult:
    same = original.room_id == new.room_id and original.text == new.text
    return AppendResult(AppendOutcome.DUPLICATE if same else AppendOutcome.CONFLICT, original)
