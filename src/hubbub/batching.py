"""Group commit for any kind of write: callers queue an item and wait; one task takes
whatever has queued (up to ``max_batch``) and runs one batch function over it, so N concurrent
writers cost one transaction and one ``fsync`` instead of N.

No added latency when idle (the first item runs at once); under load, items that arrive while
a batch commits form the next batch. One failing batch is redone item by item, so a failure
stays with the item that caused it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger("hubbub.batching")

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")


class Batcher(Generic[I, R]):
    def __init__(
        self, run: Callable[[Sequence[I]], Awaitable[list[R]]], *, max_batch: int = 256
    ) -> None:
        self._run = run
        self._max = max_batch
        self._queue: list[tuple[I, asyncio.Future[R]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max], self._queue[self._max :]
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            log.warning("a batch of %d failed (%s); redoing it item by item", len(batch), exc)
            for one in batch:
                await self._commit([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
