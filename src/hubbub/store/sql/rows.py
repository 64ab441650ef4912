"""Rows to values and the few statements more than one role runs: one definition each, so
a message or a room reads back the same whichever role read it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import Connection

from hubbub.changes import LoggedMessage, Pending
from hubbub.models import FileInfo, Message, Room, personal_channel, utc_now
from hubbub.store.schema import members, reactions, users
from hubbub.store.sql.engine import Database

_json_encode = msgspec.json.Encoder().encode
_file_decoder = msgspec.json.Decoder(FileInfo)
_ts_decoder = msgspec.json.Decoder(int | float | str | None)

# A read pointer only moves forward.
READ_UP_TO = (
    members.update()
    .where(
        members.c.room_id == sa.bindparam("rid"),
        members.c.user_id == sa.bindparam("uid"),
        members.c.last_read_seq < sa.bindparam("seq"),
    )
    .values(last_read_seq=sa.bindparam("seq"))
)


def ensure_users(db: Database, conn: Connection, user_ids: Sequence[str]) -> None:
    """Trust mode's users: created on first use, a repeat does nothing."""
    now = utc_now()
    conn.execute(
        db.insert_ignore(users),
        [{"id": u, "username": u, "password_hash": None, "created_at": now} for u in user_ids],
    )


def username_of(conn: Connection, user_id: str) -> str:
    name = conn.execute(sa.select(users.c.username).where(users.c.id == user_id)).scalar()
    return str(name) if name is not None else user_id


def entered(room: Room, user_id: str, name: str) -> list[Pending]:
    """The log of a user entering a room: to the room, and to the user's own streams."""
    who = {"room_id": room.id, "user_id": user_id, "username": name}
    return [
        Pending(room.id, "member_joined", who, user_id),
        Pending(personal_channel(user_id), "room_added", room),
    ]


def logged(conn: Connection, rows: Sequence[Any]) -> list[LoggedMessage]:
    return [
        LoggedMessage(m, int(r.gseq or 0), int(r.rev or 0))
        for m, r in zip(with_reactions(conn, rows), rows, strict=True)
    ]


def with_reactions(conn: Connection, rows: Sequence[Any]) -> list[Message]:
    """Messages with their reactions aggregated: one query for the whole page."""
    ids = [r.id for r in rows]
    grouped: dict[str, dict[str, list[str]]] = defaultdict(dict)
    if ids:
        found = conn.execute(
            sa.select(reactions.c.message_id, reactions.c.reaction, reactions.c.user_id)
            .where(reactions.c.message_id.in_(ids))
            .order_by(reactions.c.created_at, reactions.c.user_id)
        ).all()
        for r in found:
            grouped[r.message_id].setdefault(r.reaction, []).append(r.user_id)
    return [message_of(r, grouped.get(r.id)) for r in rows]


def room_of(row: Any) -> Room:
    return Room(
        id=row.id,
        name=row.name,
        visibility=row.visibility,
        created_by=row.created_by,
        created_at=row.created_at,
        last_seq=int(row.last_seq),
    )


def message_row(msg: Message, position: int, rev: int) -> dict[str, Any]:
    return {
        "gseq": position,
        "rev": rev,
        "id": msg.id,
        "room_id": msg.room_id,
        "seq": msg.seq,
        "user_id": msg.user_id,
        "username": msg.username,
        "type": msg.type,
        "text": msg.text,
        "created_at": msg.created_at,
        "client_ts": None if msg.timestamp is None else _json_encode(msg.timestamp).decode(),
        "client_msg_id": msg.client_msg_id,
        "edited_at": None,
        "deleted": False,
        "file": None if msg.file is None else _json_encode(msg.file).decode(),
    }


def message_of(row: Any, reacted: dict[str, list[str]] | None = None) -> Message:
    return Message(
        id=row.id,
        room_id=row.room_id,
        seq=int(row.seq),
        user_id=row.user_id,
        username=row.username,
        type=row.type,
        text=row.text,
        created_at=row.created_at,
        timestamp=None if row.client_ts is None else _ts_decoder.decode(row.client_ts),
        client_msg_id=row.client_msg_id,
        edited_at=row.edited_at,
        deleted=bool(row.deleted),
        reactions=reacted or {},
        file=None if row.file is None else _file_decoder.decode(row.file),
    )
