"""Senders: users who post, edit, delete and react on every node while the faults happen.

Each sender is one user doing one thing at a time, as a person at a keyboard does, so its own
log says what the server must end up holding: the last acknowledged edit's text, an
acknowledged delete, the last acknowledged reaction toggle. A request without an answer (a
timeout, a refused connection, a 5xx) is retried — a send with the same ``client_msg_id`` — on
the next node, exactly as a client behind a load balancer would; its outcome stays unknown
until some attempt is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from tests.chaos.deploy import Node
from tests.chaos.record import Journal

EMOJI = ("👍", "🎉", "❤️")


@dataclass
class Sent:
    """One message a sender posted, and what its owner's acknowledged changes say it is now.
    ``None`` means an attempt had no answer, so either outcome is right."""

    client_msg_id: str
    room: str
    text: str
    user_id: str
    acked: bool = False
    message_id: str | None = None
    expect_text: str | None = None
    expect_deleted: bool | None = False
    retired: bool = False  # a delete was attempted: no more edits


@dataclass
class Ledger:
    """Everything every sender did, for the oracle."""

    sent: list[Sent] = field(default_factory=list)
    # (message_id, user_id, emoji) -> present after the last answered toggle; None: unknown
    reactions: dict[tuple[str, str, str], bool | None] = field(default_factory=dict)
    acked_pool: list[Sent] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # 4xx that should not have happened
    edits: int = 0
    deletes: int = 0
    toggles: int = 0


class Sender:
    def __init__(
        self,
        user_id: str,
        token: str,
        rooms: list[str],
        nodes: list[Node],
        home: int,
        rng: random.Random,
        ledger: Ledger,
        journal: Journal,
    ) -> None:
        self.user_id = user_id
        self.auth = {"Authorization": f"Bearer {token}"}
        self.rooms = rooms
        self.nodes = nodes
        self.home = home
        self.rng = rng
        self.ledger = ledger
        self.journal = journal
        self.stopping = False
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(8.0),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )
        self.mine: list[Sent] = []
        self.count = 0

    async def call(
        self, method: str, path: str, body: Any = None, attempts: int = 4
    ) -> httpx.Response | None:
        """The first answer that is not a 5xx, trying node after node; None if none came."""
        for attempt in range(attempts):
            node = self.nodes[(self.home + attempt) % len(self.nodes)]
            started = time.monotonic()
            try:
                r = await self.http.request(method, node.url + path, json=body, headers=self.auth)
            except httpx.HTTPError:
                await asyncio.sleep(self.rng.uniform(0.1, 0.4))
                continue
            if r.status_code >= 500:
                self.journal.server_error(node.index, r.status_code, f"{method} {path}", started)
                await asyncio.sleep(self.rng.uniform(0.1, 0.4))
                continue
            return r
        return None

    async def send(self, room: str, text: str) -> Sent:
        sent = Sent(uuid.uuid4().hex, room, text, self.user_id)
        self.ledger.sent.append(sent)
        body = {"room_id": room, "message": text, "client_msg_id": sent.client_msg_id}
        r = await self.call("POST", "/chat/messages", body, attempts=80)
        if r is not None and r.status_code in (200, 201):
            msg = r.json()["message"]
            sent.acked, sent.message_id, sent.expect_text = True, msg["id"], text
            self.mine.append(sent)
            self.ledger.acked_pool.append(sent)
        elif r is not None:
            self.ledger.refused.append(f"send {room}: {r.status_code} {r.text[:200]}")
        return sent

    async def edit(self, sent: Sent) -> None:
        assert sent.message_id is not None
        text = f"{sent.text} (edit {self.rng.randrange(10**6)})"
        self.ledger.edits += 1
        r = await self.call("PATCH", f"/chat/messages/{sent.message_id}", {"message": text})
        if r is None:
            sent.expect_text = None
        elif r.status_code == 200:
            sent.expect_text = text
        else:
            self.ledger.refused.append(f"edit {sent.message_id}: {r.status_code} {r.text[:200]}")

    async def delete(self, sent: Sent) -> None:
        sent.retired = True
        self.ledger.deletes += 1
        r = await self.call("DELETE", f"/chat/messages/{sent.message_id}")
        if r is None:
            sent.expect_deleted = None
        elif r.status_code == 200:
            sent.expect_deleted = True
        else:
            self.ledger.refused.append(f"delete {sent.message_id}: {r.status_code} {r.text[:200]}")

    async def toggle(self, target: Sent) -> None:
        assert target.message_id is not None
        emoji = self.rng.choice(EMOJI)
        key = (target.message_id, self.user_id, emoji)
        add = not self.ledger.reactions.get(key, False)
        self.ledger.toggles += 1
        path = f"/chat/messages/{target.message_id}/reactions"
        if add:
            r = await self.call("POST", path, {"reaction": emoji})
        else:
            r = await self.call("DELETE", f"{path}/{quote(emoji)}")
        if r is None:
            self.ledger.reactions[key] = None
        elif r.status_code in (200, 201):
            self.ledger.reactions[key] = add
        # 404/409: the message was deleted meanwhile by its owner; nothing changed.

    def text(self) -> str:
        self.count += 1
        filler = " ".join(
            self.rng.choice(("chaos", "hub", "bub", "ünïcödé", "🙂", "x")) for _ in range(8)
        )
        return f"{self.user_id[:8]}#{self.count} {filler * self.rng.randint(1, 6)}"

    async def run(self) -> None:
        while not self.stopping:
            roll = self.rng.random()
            live = [s for s in self.mine if not s.retired]
            if roll < 0.12 and live:
                await self.edit(self.rng.choice(live))
            elif roll < 0.18 and live:
                await self.delete(self.rng.choice(live))
            elif roll < 0.32 and self.ledger.acked_pool:
                await self.toggle(self.rng.choice(self.ledger.acked_pool[-40:]))
            else:
                await self.send(self.rng.choice(self.rooms), self.text())
            await asyncio.sleep(self.rng.uniform(0.05, 0.25))

    async def burst(self, room: str, count: int) -> None:
        """Big messages into one room, fast: enough bytes to overflow a stalled reader."""
        filler = "stall " * 500

        async def one(i: int) -> None:
            await self.send(room, f"burst {self.user_id[:8]} {i} {filler}")

        for start in range(0, count, 8):
            await asyncio.gather(*[one(i) for i in range(start, min(count, start + 8))])

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.http.aclose()
