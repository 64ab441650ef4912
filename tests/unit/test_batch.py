"""``TickBatch``: requests of one moment answered by one call; never joining a running call."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.batch import TickBatch


async def test_one_call_for_the_requests_of_a_moment() -> None:
    calls: list[list[int]] = []

    async def fetch(keys: list[int]) -> dict[int, str]:
        calls.append(keys)
        await asyncio.sleep(0.01)
        return {k: str(k) for k in keys if k != 3}

    batch: TickBatch[int, str] = TickBatch(fetch, max_keys=4)
    got = await asyncio.gather(*(batch.get(k) for k in [1, 2, 2, 3, 4, 5]))
    assert got == ["1", "2", "2", None, "4", "5"]
    assert calls == [[1, 2, 3, 4], [5]]


async def test_a_key_asked_during_a_call_waits_for_the_next() -> None:
    calls: list[list[str]] = []
    started = asyncio.Event()

    async def fetch(keys: list[str]) -> dict[str, int]:
        calls.append(keys)
        started.set()
        await asyncio.sleep(0.01)
        return {k: len(calls) for k in keys}

    batch: TickBatch[str, int] = TickBatch(fetch)
    first = asyncio.ensure_future(batch.get("a"))
    await started.wait()
    assert await batch.get("a") == 2  # a fresh read, not the one already running
    assert await first == 1


async def test_a_failure_reaches_every_waiter_and_a_cancel_only_its_own() -> None:
    async def fetch(keys: list[str]) -> dict[str, int]:
        await asyncio.sleep(0.01)
        raise RuntimeError("away")

    batch: TickBatch[str, int] = TickBatch(fetch)
    one = asyncio.ensure_future(batch.get("a"))
    two = asyncio.ensure_future(batch.get("a"))
    await asyncio.sleep(0)
    one.cancel()
    with pytest.raises(RuntimeError):
        await two
    assert one.cancelled()
