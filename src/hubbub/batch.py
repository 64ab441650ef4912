"""Reads (and trust mode's first-use writes) asked for by many requests at once, done as one.

A reconnect storm brings thousands of streams within seconds, each wanting the same few
lookups (its session, its account, its room and membership, the room's head). One store round
trip each was most of a connect's cost: a thread hop and a statement per request. A
:class:`TickBatch` gathers the keys asked for while no call of its own is running and answers
them all with one call (``WHERE key IN (…)``); keys asked for meanwhile wait for the next call,
as the writer's group commit does. So a lone request costs one call, as before, and a storm
costs one call per batch instead of one per request.

Freshness is that of a call of one's own: a key never joins a call already running (which may
have started before the request, e.g. before the caller's own join committed); it waits for the
next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Fetch = Callable[[list[K]], Awaitable[Mapping[K, V]]]


class TickBatch(Generic[K, V]):
    """``await batch.get(key)``: ``fetch``'s answer for ``key`` (``None`` if it has none),
    ``fetch`` called with at most ``max_keys`` keys at a time and one call at a time."""

    __slots__ = ("_fetch", "_max_keys", "_running", "_waiting")

    def __init__(self, fetch: Fetch[K, V], *, max_keys: int = 500) -> None:
        self._fetch = fetch
        self._max_keys = max_keys
        self._waiting: dict[K, asyncio.Future[V | None]] = {}
        self._running: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V | None:
        future = self._waiting.get(key)
        if future is None:
            future = self._waiting[key] = asyncio.get_running_loop().create_future()
            if self._running is None:
                self._running = asyncio.get_running_loop().create_task(self._run())
        if future.done():
            return future.result()
        # Shielded: one caller giving up does not cancel the answer the others wait for.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        try:
            await asyncio.sleep(0)  # let this tick's requests join
            while self._waiting:
                batch = self._waiting
                if len(batch) > self._max_keys:
                    keys = list(batch)[: self._max_keys]
                    taken = {k: batch.pop(k) for k in keys}
                else:
                    taken, self._waiting = batch, {}
                await self._answer(taken)
        finally:
            self._running = None
            if self._waiting:  # cancelled with keys left: nobody must wait for ever
                for future in self._waiting.values():
                    if not future.done():
                        future.cancel()
                self._waiting = {}

    async def _answer(self, taken: dict[K, asyncio.Future[V | None]]) -> None:
        try:
            found = await self._fetch(list(taken))
        except BaseException as exc:
            for future in taken.values():
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                    continue
                future.set_exception(exc)
                with contextlib.suppress(BaseException):
                    future.exception()  # retrieved: nobody waiting is not an error
            if not isinstance(exc, Exception):
                raise
            return
        for key, future in taken.items():
            if not future.done():
                future.set_result(found.get(key))
