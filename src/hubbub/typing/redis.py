"""Typing indicators shared by every node, in Redis (the rules are in ``base.py``).

``<prefix><room>:<user>`` lives for ``expiry`` seconds and is renewed by each "typing" call on
any node; ``<prefix>on:<room>:<user>`` marks that the room was told ``true``. Telling is claimed
atomically: ``SET on NX`` (one node announces ``true``), ``DEL on`` returning 1
(one node announces ``false``), whether the indicator ended by request, by a sent message, or by
expiring — every node that touched it checks when it should have expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.exceptions import RedisError

from hubbub.backend_url import connect
from hubbub.clock import Clock, Handle, LoopClock
from hubbub.typing.base import TypingCallback

log = logging.getLogger("hubbub.typing")


class RedisTypingTracker:
    def __init__(
        self,
        url: str,
        *,
        expiry: float = 5.0,
        prefix: str = "hubbub:typing:",
        clock: Clock | None = None,
    ) -> None:
        self._client = connect(url)
        self._on_change: TypingCallback | None = None
        self._expiry = expiry
        self._clock: Clock = clock or LoopClock()
        self._p = prefix
        self._checks: dict[tuple[str, str], Handle] = {}
        self._touched: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, on_change: TypingCallback) -> None:
        self._on_change = on_change

    async def _announce(self, room_id: str, user_id: str, username: str, on: bool) -> None:
        if self._on_change is not None:
            await self._on_change(room_id, user_id, username, on)

    def _keys(self, room_id: str, user_id: str) -> tuple[str, str]:
        return f"{self._p}{room_id}:{user_id}", f"{self._p}on:{room_id}:{user_id}"

    async def set(self, room_id: str, user_id: str, username: str, is_typing: bool) -> bool:
        state, told = self._keys(room_id, user_id)
        key = (room_id, user_id)
        if is_typing:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(state, b"1", px=int(self._expiry * 1000))
                pipe.set(told, b"1", nx=True, px=int(self._expiry * 4000))
                _, claimed = await pipe.execute()
            self._touched[key] = self._clock.now() + self._expiry
            self._schedule(room_id, user_id, username, self._expiry)
            if claimed:
                await self._announce(room_id, user_id, username, True)
                return True
            return False
        self._touched.pop(key, None)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.delete(state)
            pipe.delete(told)
            _, ended = await pipe.execute()
        if ended:
            await self._announce(room_id, user_id, username, False)
            return True
        return False

    def active(self, room_id: str, user_id: str) -> bool:
        """Whether this node saw the user typing recently (a cheap local hint)."""
        until = self._touched.get((room_id, user_id))
        return until is not None and until > self._clock.now()

    def _schedule(self, room_id: str, user_id: str, username: str, delay: float) -> None:
        key = (room_id, user_id)
        old = self._checks.pop(key, None)
        if old is not None:
            old.cancel()
        self._checks[key] = self._clock.call_later(
            delay + 0.05, self._check_soon, room_id, user_id, username
        )

    def _check_soon(self, room_id: str, user_id: str, username: str) -> None:
        self._checks.pop((room_id, user_id), None)
        task = asyncio.get_running_loop().create_task(self._check(room_id, user_id, username))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _check(self, room_id: str, user_id: str, username: str) -> None:
        state, told = self._keys(room_id, user_id)
        try:
            left = await self._client.pttl(state)
            if left > 0:  # renewed (maybe on another node): look again when it should end
                self._schedule(room_id, user_id, username, left / 1000)
                return
            self._touched.pop((room_id, user_id), None)
            if await self._client.delete(told):
                await self._announce(room_id, user_id, username, False)
        except (RedisError, OSError) as exc:
            log.warning("typing expiry of %s in %s not checked: %s", user_id, room_id, exc)

    async def close(self) -> None:
        for handle in self._checks.values():
            handle.cancel()
        self._checks.clear()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()
