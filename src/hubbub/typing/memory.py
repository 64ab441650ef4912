"""Typing indicators for one node: one timer per (room, user) that is typing."""

from __future__ import annotations

import asyncio
import contextlib

from hubbub.clock import Clock, Handle, LoopClock
from hubbub.typing.base import TypingCallback


class MemoryTypingTracker:
    def __init__(self, expiry: float = 5.0, *, clock: Clock | None = None) -> None:
        self._on_change: TypingCallback | None = None
        self._expiry = expiry
        self._clock: Clock = clock or LoopClock()
        self._timers: dict[tuple[str, str], Handle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, on_change: TypingCallback) -> None:
        self._on_change = on_change

    async def set(self, room_id: str, user_id: str, username: str, is_typing: bool) -> bool:
        key = (room_id, user_id)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if is_typing:
            self._timers[key] = self._clock.call_later(
                self._expiry, self._expire, room_id, user_id, username
            )
            if timer is None:
                await self._announce(room_id, user_id, username, True)
                return True
            return False
        if timer is not None:
            await self._announce(room_id, user_id, username, False)
            return True
        return False

    def active(self, room_id: str, user_id: str) -> bool:
        return (room_id, user_id) in self._timers

    async def _announce(self, room_id: str, user_id: str, username: str, on: bool) -> None:
        if self._on_change is not None:
            await self._on_change(room_id, user_id, username, on)

    def _expire(self, room_id: str, user_id: str, username: str) -> None:
        self._timers.pop((room_id, user_id), None)
        task = asyncio.get_running_loop().create_task(
            self._announce(room_id, user_id, username, False)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
