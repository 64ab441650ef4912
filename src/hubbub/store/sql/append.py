"""The send path: a batch of messages in one write transaction, with trust mode's first use
(users, public rooms, memberships) and the log of it. Rules: ``Messages.append_batch`` in
``store/roles.py``.

Why a module of its own: this is the hot path. Each statement here is one round trip for the
whole batch, whatever its size; one more is a measurable cost on every commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from hubbub.changes import Change, Pending
from hubbub.encoding import line_safe_json
from hubbub.models import Message, is_personal, utc_now
from hubbub.store.base import AppendOutcome, AppendRequest, AppendResult
from hubbub.store.changelog import insert_changes, take_positions
from hubbub.store.schema import members, messages, rooms
from hubbub.store.sql.engine import Database, new_id
from hubbub.store.sql.rows import (
    READ_UP_TO,
    SET_HEAD,
    ensure_users,
    entered,
    message_of,
    message_row,
    room_of,
)


def append(
    db: Database, conn: Connection, items: Sequence[AppendRequest], known: set[str]
) -> list[AppendResult]:
    """The whole batch in the caller's transaction: one round trip per kind of statement,
    whatever the batch size. ``known``: trust-mode users known to exist (not inserted again)."""
    now = utc_now()
    new_users = sorted({it.message.user_id for it in items if it.create_user} - known)
    if new_users:
        ensure_users(db, conn, new_users)  # remembered once committed: users stay
    room_ids = sorted({it.message.room_id for it in items})
    locked: dict[str, Any] = {}
    state = lock_rooms(db, conn, room_ids, locked)
    creators: dict[str, str] = {}
    for it in items:
        rid = it.message.room_id
        if rid not in state and it.create_room:
            creators.setdefault(rid, it.message.user_id)
    created_rooms: set[str] = set()
    if creators:
        conn.execute(
            db.insert_ignore(rooms),
            [
                {
                    "id": rid,
                    "name": rid,
                    "visibility": "public",
                    "created_by": user,
                    "created_at": now,
                }
                for rid, user in creators.items()
            ],
        )
        fresh = lock_rooms(db, conn, sorted(creators), locked)
        created_rooms = {rid for rid, (_, _, rev) in fresh.items() if rev == 0}
        if created_rooms:
            conn.execute(
                db.insert_ignore(members),
                [
                    {"room_id": r, "user_id": creators[r], "role": "admin", "joined_at": now}
                    for r in sorted(created_rooms)
                ],
            )
        state.update(fresh)
    user_ids = {it.message.user_id for it in items}
    membership = {
        (r.room_id, r.user_id)
        for r in (
            conn.execute(
                sa.select(members.c.room_id, members.c.user_id).where(
                    members.c.room_id.in_(room_ids), members.c.user_id.in_(user_ids)
                )
            )
        ).all()
    }
    cmids = [it.message.client_msg_id for it in items if it.message.client_msg_id]
    stored: dict[tuple[str, str], Message] = {}
    if cmids:
        for row in (
            conn.execute(sa.select(messages).where(messages.c.client_msg_id.in_(cmids)))
        ).all():
            stored[(row.user_id, row.client_msg_id)] = message_of(row)

    results: list[AppendResult | None] = [None] * len(items)
    accepted: dict[str, list[int]] = defaultdict(list)
    first_in_batch: dict[tuple[str, str], int] = {}
    repeats: list[tuple[int, int]] = []
    joins: dict[tuple[str, str], int] = {}
    for i, it in enumerate(items):
        m = it.message
        room_state = state.get(m.room_id)
        if room_state is None:
            results[i] = AppendResult(AppendOutcome.NO_ROOM)
            continue
        key_member = (m.room_id, m.user_id)
        if key_member not in membership:
            if room_state[0] == "private":
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
        conn.execute(
            db.insert_ignore(members),
            [{"room_id": r, "user_id": u, "role": "member", "joined_at": now} for r, u in joins],
        )

    # The log, in publish order: each item's membership changes (trust mode's first use),
    # then its message. Positions and revs follow that order.
    logged: dict[int, list[Pending]] = defaultdict(list)
    if joins or created_rooms:
        room_rows = {r: room_of(row) for r, row in locked.items()}
        entering = [(r, creators[r]) for r in sorted(created_rooms)] + list(joins)
        for r, u in entering:
            found = joins.get((r, u))
            i = (
                found
                if found is not None
                else next(j for j, it in enumerate(items) if it.message.room_id == r)
            )
            logged[i] += entered(room_rows[r], u, items[i].message.username)

    built: dict[int, Message] = {}
    rows: list[dict[str, Any]] = []
    heads: list[dict[str, Any]] = []
    for room_id, idxs in accepted.items():
        seq = state[room_id][1]
        for i in idxs:
            seq += 1
            m = items[i].message
            msg = Message(
                id=new_id(),
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
            built[i] = msg
        heads.append({"rid": room_id, "head": seq})
    order = sorted(set(built) | set(logged))
    total = len(built) + sum(len(v) for v in logged.values())
    if total:
        position = take_positions(conn, total)
        revs = {r: v[2] for r, v in state.items()}
        done: list[Change] = []
        item_changes: dict[int, tuple[Change, ...]] = {}
        item_rev: dict[int, tuple[int, int]] = {}
        for i in order:
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
        insert_changes(conn, now, done)
        for i in order:
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
        for head in heads:
            head["rev"] = revs[head["rid"]]
        touched = {c.room_id for c in done if c.rev is not None} - {h["rid"] for h in heads}
        heads += [{"rid": r, "head": state[r][1], "rev": revs[r]} for r in sorted(touched)]
        conn.execute(SET_HEAD, heads)
        if rows:
            conn.execute(messages.insert(), rows)
            conn.execute(
                READ_UP_TO,
                [{"rid": m.room_id, "uid": m.user_id, "seq": m.seq} for m in built.values()],
            )
    for i, first in repeats:
        results[i] = repeat(built[first], items[i].message)
    return [r for r in results if r is not None]


def lock_rooms(
    db: Database,
    conn: Connection,
    room_ids: Sequence[str],
    rows: dict[str, Any] | None = None,
) -> dict[str, tuple[str, int, int]]:
    """Visibility, ``last_seq`` and ``last_rev`` of the rooms, locked until commit: the
    write transaction is ``BEGIN IMMEDIATE`` on SQLite (one writer at a time), ``FOR
    UPDATE`` on PostgreSQL, so nobody else can take the same numbers between this read and
    our update."""
    query = sa.select(rooms).where(rooms.c.id.in_(room_ids))
    if db.dialect == "postgresql":
        query = query.with_for_update()
    found = conn.execute(query).all()
    if rows is not None:
        rows.update((r.id, r) for r in found)  # the whole rows, for the log's room objects
    return {r.id: (r.visibility, int(r.last_seq), int(r.last_rev)) for r in found}


def repeat(original: Message, new: Any) -> AppendResult:
    same = original.room_id == new.room_id and original.text == new.text
    return AppendResult(AppendOutcome.DUPLICATE if same else AppendOutcome.CONFLICT, original)
