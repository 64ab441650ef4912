"""Group commit for any write: batches form under load, and one bad item fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from hubbub.batching import Batcher


async def test_concurrent_items_share_batches_and_get_their_own_results() -> None:
    calls: list[list[int]] = []

    async def run(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        await asyncio.sleep(0.01)  # a commit takes time: others queue meanwhile
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(run, max_batch=50)
    results = await asyncio.gather(*[batcher.submit(i) for i in range(120)])
    assert results == [i * 10 for i in range(120)]
    assert [len(c) for c in calls] == [50, 50, 20]
    calls.clear()
    assert await batcher.submit(7) == 70  # alone: runs at once, by itself
    assert calls == [[7]]


async def test_a_failing_item_fails_alone() -> None:
    async def run(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise ValueError("13 is refused")
        await asyncio.sleep(0)
        return list(items)

    batcher: Batcher[int, int] = Batcher(run)
    outcomes = await asyncio.gather(*[batcher.submit(i) for i in range(20)], return_exceptions=True)
    assert isinstance(outcomes[13], ValueError)
    assert [o for i, o in enumerate(outcomes) if i != 13] == [i for i in range(20) if i != 13]
    with pytest.raises(ValueError, match="13 is refused"):
        await batcher.submit(13)
