"""The verdict: the store, read back through the API, against the senders' ledger and every
client's picture of every room.

The store is the source of truth the contract names; everything else must agree with it. So
the oracle reads each room's whole history (``after`` paging) once the faults are healed and
the senders have stopped, waits for the followers to catch up, and counts every way they can
disagree. Any count that is not zero is a violation.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from tests.chaos.clients import Follower
from tests.chaos.model import snapshot
from tests.chaos.record import Journal
from tests.chaos.workload import Ledger


async def server_state(
    url: str, token: str, rooms: list[str], timeout: float = 60
) -> dict[str, list[dict[str, Any]]]:
    """Each room's full history, oldest first (retrying while the store settles)."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url, timeout=15) as http:
        out: dict[str, list[dict[str, Any]]] = {}
        for room in rooms:
            messages: list[dict[str, Any]] = []
            after = 0
            while True:
                try:
                    r = await http.get(
                        f"/chat/room/{quote(room)}/history",
                        params={"after": after, "limit": 200},
                        headers=headers,
                    )
                except httpx.HTTPError:
                    r = None
                if r is None or r.status_code != 200:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"history of {room}: {r and r.status_code}")
                    await asyncio.sleep(0.5)
                    continue
                page = r.json()
                messages.extend(page)
                if len(page) < 200:
                    break
                after = page[-1]["seq"]
            out[room] = messages
    return out


def diverged(follower: Follower, truth: dict[str, list[dict[str, Any]]]) -> list[str]:
    """How a follower's rooms differ from the store (empty: identical)."""
    out = []
    for room, model in follower.models.items():
        mine, theirs = model.state(), snapshot(truth[room])
        if mine == theirs:
            continue
        missing = sorted(theirs[k][0] for k in theirs.keys() - mine.keys())
        extra = sorted(mine[k][0] for k in mine.keys() - theirs.keys())
        differ = sorted(theirs[k][0] for k in theirs.keys() & mine.keys() if mine[k] != theirs[k])
        detail = f"{follower.name} {room}: missing seqs {missing[:10]} ({len(missing)})"
        detail += f", extra {extra[:10]}, differing seqs {differ[:10]} ({len(differ)})"
        if differ:
            k = next(k for k in theirs.keys() & mine.keys() if mine[k] != theirs[k])
            detail += f"; e.g. client {mine[k]} vs server {theirs[k]}"
        for seq in missing[:2]:
            near = [t for t in follower.trail if t[1] == room and abs(t[2] - seq) <= 2]
            at = [i for i, t in enumerate(follower.trail) if t in near]
            if at:
                around = follower.trail[max(0, at[0] - 3) : at[-1] + 4]
                detail += f"; received around seq {seq} (conn, room, seq, id): {around}"
        out.append(detail)
    return out


async def converge(
    followers: list[Follower], truth: dict[str, list[dict[str, Any]]], timeout: float
) -> None:
    """Give the followers time to catch up with the store (they are still connected)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(diverged(f, truth) for f in followers):
            return
        await asyncio.sleep(0.25)


@dataclass
class Report:
    deployment: str
    seed: int
    faults: Counter[str] = field(default_factory=Counter)
    sends: int = 0
    acked: int = 0
    edits: int = 0
    deletes: int = 0
    reactions: int = 0
    deliveries: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    divergent: int = 0
    errors_5xx: int = 0
    errors_excused: int = 0
    stalls_cut: int = 0
    reconnects: int = 0
    stored: int = 0
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)


def judge(
    report: Report,
    truth: dict[str, list[dict[str, Any]]],
    ledger: Ledger,
    followers: list[Follower],
    journal: Journal,
) -> None:
    v = report.violations
    by_cmid: dict[str, list[dict[str, Any]]] = {}
    by_id: dict[str, dict[str, Any]] = {}
    for room, messages in truth.items():
        seqs = [m["seq"] for m in messages]
        if seqs != list(range(1, len(seqs) + 1)):
            v.append(f"{room}: seqs are not 1..{len(seqs)} in order: {seqs[:20]}…")
        for m in messages:
            by_id[m["id"]] = m
            if m.get("client_msg_id"):
                by_cmid.setdefault(m["client_msg_id"], []).append(m)
        report.stored += len(messages)

    report.sends = len(ledger.sent)
    report.acked = sum(s.acked for s in ledger.sent)
    report.edits, report.deletes, report.reactions = ledger.edits, ledger.deletes, ledger.toggles
    for s in ledger.sent:
        stored = by_cmid.get(s.client_msg_id, [])
        if len(stored) > 1:
            report.duplicated += len(stored) - 1
            v.append(f"client_msg_id {s.client_msg_id} stored {len(stored)} times")
        if s.acked and not stored:
            report.lost += 1
            v.append(f"acknowledged send {s.client_msg_id} ({s.room}) is not stored")
        if not s.acked or not stored:
            continue
        m = stored[0]
        if m["id"] != s.message_id or m["room_id"] != s.room:
            v.append(f"{s.client_msg_id}: stored as {m['id']} in {m['room_id']}")
        if s.expect_deleted is True and not m["deleted"]:
            report.lost += 1
            v.append(f"acknowledged delete of {m['id']} not applied")
        if s.expect_deleted is False and not s.retired and m["deleted"]:
            v.append(f"{m['id']} deleted though no delete was attempted")
        if s.expect_text is not None and not m["deleted"] and m["text"] != s.expect_text:
            report.lost += 1
            v.append(f"{m['id']}: text {m['text'][:40]!r}, last acknowledged edit differs")
    for (mid, user, emoji), present in ledger.reactions.items():
        target = by_id.get(mid)
        if present is None or target is None or target["deleted"]:
            continue
        if (user in target["reactions"].get(emoji, [])) != present:
            report.lost += 1
            v.append(f"{mid}: reaction {emoji} of {user} should be {present}")
    v.extend(f"unexpected refusal: {r}" for r in ledger.refused)

    for f in followers:
        report.deliveries += f.counts.deliveries
        report.duplicated += f.counts.duplicated
        report.reordered += f.counts.reordered
        report.reconnects += f.counts.reconnects
        differences = diverged(f, truth)
        if differences:
            report.divergent += 1
            v.extend(differences)
        v.extend(f"{f.name}: {p}" for p in f.counts.problems[:10])

    report.errors_5xx = len(journal.errors)
    unexcused = journal.unexcused()
    report.errors_excused = report.errors_5xx - len(unexcused)
    v.extend(
        f"{e.status} from node {e.node} outside a store outage: {e.what} "
        f"(at {e.started - journal.t0:.1f}s, answered after {e.answered - e.started:.1f}s)"
        for e in unexcused[:20]
    )
    if len(unexcused) > 20:
        v.append(f"… and {len(unexcused) - 20} more 5xx")


def table(reports: list[Report]) -> str:
    """Markdown, so the same text goes to the terminal and to docs/chaos-results.md."""
    kinds = sorted({k for r in reports for k in r.faults})
    cols = [r.deployment for r in reports]
    rows: list[tuple[str, list[str]]] = [
        (f"fault: {k}", [str(r.faults.get(k, 0)) for r in reports]) for k in kinds
    ]

    def row(name: str, value: Any) -> tuple[str, list[str]]:
        return name, [str(value(r)) for r in reports]

    rows += [
        row("faults injected (total)", lambda r: sum(r.faults.values())),
        row("stalled readers cut by the server", lambda r: r.stalls_cut),
        row("sends attempted", lambda r: r.sends),
        row("sends acknowledged", lambda r: r.acked),
        row(
            "edits / deletes / reaction toggles",
            lambda r: f"{r.edits} / {r.deletes} / {r.reactions}",
        ),
        row("messages stored", lambda r: r.stored),
        row("deliveries (messages received by clients)", lambda r: r.deliveries),
        row("client reconnects", lambda r: r.reconnects),
        row("**lost**", lambda r: r.lost),
        row("**duplicated**", lambda r: r.duplicated),
        row("**reordered**", lambda r: r.reordered),
        row("**divergent clients**", lambda r: r.divergent),
        row(
            "5xx seen (of which 503 in a store outage)",
            lambda r: f"{r.errors_5xx} ({r.errors_excused})",
        ),
        row("**violations**", lambda r: len(r.violations)),
        row("seconds", lambda r: f"{r.seconds:.0f}"),
    ]
    lines = ["| | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    lines += [f"| {name} | " + " | ".join(vals) + " |" for name, vals in rows]
    return "\n".join(lines)
