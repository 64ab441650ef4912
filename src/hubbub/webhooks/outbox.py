"""The change log read as a webhook outbox, and the delivery cursor kept beside it.

Every change is logged in the transaction that makes it (``store/changelog.py``), with a stream
position from one counter that every writer takes under a lock: positions commit in order, so
once the counter reads P, everything at or below P is committed. The worker therefore needs only
"the last position delivered" (``webhook_cursors``, migration 0010): what lies past it is the
pending work, and it survives any restart because it *is* the log."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Connection

from hubbub.encoding import line_safe_json, to_json
from hubbub.models import utc_now
from hubbub.store.schema import changes, counters, messages
from hubbub.store.sql.engine import Database
from hubbub.store.sql.rows import logged

# Created by migration 0010; kept out of ``store/schema.py`` because only this package uses it.
cursors = sa.Table(
    "webhook_cursors",
    sa.MetaData(),
    sa.Column("endpoint", sa.String(64), primary_key=True),  # sha256 of the URL
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One change to POST: its place in the log and its body, built once for every attempt."""

    position: int
    room_id: str
    type: str
    created_at: str
    body: bytes


def endpoint_key(url: str) -> str:
    """A cursor per URL: pointing Hubbub at a new receiver starts it at the head, instead of
    sending it everything the old one was sent."""
    return hashlib.sha256(url.encode()).hexdigest()


def payload(position: int, room_id: str, name: str, data: bytes, created_at: str) -> bytes:
    """``{"id", "type", "room_id", "data", "created_at"}``; ``data`` is the change's stored JSON
    spliced in as it is (exactly what the streams carry), not decoded and encoded again."""
    head = to_json({"id": str(position), "type": name, "room_id": room_id})
    return head[:-1] + b',"data":' + data + b',"created_at":' + to_json(created_at) + b"}"


class Outbox:
    def __init__(self, db: Database, url: str) -> None:
        self._db = db
        self._key = endpoint_key(url)
        self.head = 0  # the log's head as the last page() or read_head() saw it

    async def cursor(self) -> int:
        """The last position delivered (or given up). A first start begins at the head: what
        was stored before webhooks were on is not sent retroactively."""

        def work(conn: Connection) -> int:
            found = conn.execute(
                sa.select(cursors.c.position).where(cursors.c.endpoint == self._key)
            ).scalar()
            if found is not None:
                return int(found)
            head = conn.execute(
                sa.select(counters.c.value).where(counters.c.name == "messages")
            ).scalar()
            start = int(head or 0)
            conn.execute(
                self._db.insert_ignore(cursors),
                {"endpoint": self._key, "position": start, "updated_at": utc_now()},
            )
            return int(
                conn.execute(
                    sa.select(cursors.c.position).where(cursors.c.endpoint == self._key)
                ).scalar_one()
            )

        return await self._db.write(work)

    async def advance(self, position: int) -> None:
        """Only forward: a node that lost the lock mid-page cannot move the cursor back."""
        await self._db.change(
            cursors.update()
            .where(cursors.c.endpoint == self._key, cursors.c.position < position)
            .values(position=position, updated_at=utc_now())
        )

    async def read_head(self) -> int:
        """The last position taken in the log (messages and changes share the counter)."""

        def work(conn: Connection) -> int:
            return int(
                conn.execute(
                    sa.select(counters.c.value).where(counters.c.name == "messages")
                ).scalar()
                or 0
            )

        self.head = await self._db.read(work)
        return self.head

    async def page(self, after: int, limit: int) -> tuple[list[Delivery], int]:
        """The room changes after position ``after`` in position order (at most ``limit``), and
        how far that page covers the log: the last position returned, or — when the page is not
        full — the counter itself (read in the same snapshot), so stretches holding only
        personal changes (``@user``, never sent) are passed over without re-reading them."""

        def work(conn: Connection) -> tuple[list[Delivery], int]:
            head = int(
                conn.execute(
                    sa.select(counters.c.value).where(counters.c.name == "messages")
                ).scalar()
                or 0
            )
            self.head = head
            if head <= after:
                return [], after
            rows = conn.execute(
                sa.select(messages)
                .where(messages.c.gseq > after, messages.c.gseq <= head)
                .order_by(messages.c.gseq)
                .limit(limit)
            ).all()
            found = [
                Delivery(
                    m.position,
                    m.message.room_id,
                    "message",
                    m.message.created_at,
                    payload(
                        m.position,
                        m.message.room_id,
                        "message",
                        line_safe_json(m.message),
                        m.message.created_at,
                    ),
                )
                for m in logged(conn, rows)
            ]
            changed = conn.execute(
                sa.select(changes)
                .where(
                    changes.c.position > after,
                    changes.c.position <= head,
                    sa.not_(changes.c.room_id.startswith("@", autoescape=True)),
                )
                .order_by(changes.c.position)
                .limit(limit)
            ).all()
            found += [
                Delivery(
                    int(c.position),
                    c.room_id,
                    c.name,
                    c.created_at,
                    payload(int(c.position), c.room_id, c.name, c.data.encode(), c.created_at),
                )
                for c in changed
            ]
            found.sort(key=lambda d: d.position)
            if len(found) >= limit:
                found = found[:limit]
                return found, found[-1].position
            return found, head

        return await self._db.read(work, snapshot=True)
