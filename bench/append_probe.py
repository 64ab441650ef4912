#!/usr/bin/env python3
"""The writer's own cost per stored message, in-process: ``Messages.append_batch`` of ``--batch``
trust-mode sends (first use of rooms and users included in the warm-up) on a fresh SQLite file
(WAL, ``synchronous=FULL``), timed over ``--batches`` commits. No HTTP, no event loop
contention: what one commit of the send path costs the writer thread, per message.

    .venv/bin/python bench/append_probe.py --batch 16 --batches 300

Prints one JSON object: wall ms per batch, CPU µs per message (user, system).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time

from hubbub.models import NewMessage
from hubbub.store.base import AppendRequest
from hubbub.store.sql import SqlStore


def batch(k: int, size: int, rooms: int) -> list[AppendRequest]:
    return [
        AppendRequest(
            NewMessage(
                room_id=f"r{(k * size + i) % rooms}",
                user_id=f"pub{i}",
                username=f"pub{i}",
                text=f"hello world {k}.{i}",
            ),
            create_room=True,
            join_public=True,
            create_user=True,
        )
        for i in range(size)
    ]


async def main(args: argparse.Namespace) -> dict[str, float]:
    store = SqlStore(f"sqlite:///{tempfile.mkdtemp(prefix='hubbub-append-')}/probe.db")
    await store.start()
    try:
        for k in range(args.warmup):
            await store.messages.append_batch(batch(k, args.batch, args.rooms))
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for k in range(args.warmup, args.warmup + args.batches):
            await store.messages.append_batch(batch(k, args.batch, args.rooms))
        r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    finally:
        await store.close()
    n = args.batches * args.batch
    return {
        "batch": args.batch,
        "batches": args.batches,
        "wall_ms_per_batch": round((t1 - t0) / args.batches * 1000, 2),
        "cpu_us_per_message_user": round((r1.ru_utime - r0.ru_utime) / n * 1e6, 1),
        "cpu_us_per_message_sys": round((r1.ru_stime - r0.ru_stime) / n * 1e6, 1),
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--rooms", type=int, default=1000)
    print(json.dumps(asyncio.run(main(p.parse_args()))))
