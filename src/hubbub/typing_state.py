"""Typing indicators: never stored, throttled, and ended by themselves.

Only changes are broadcast: a client that says "typing" on every keystroke renews a timer and
costs a dict lookup; the room hears ``is_typing: true`` once and ``false`` when the user stops
saying so for ``expiry`` seconds (or says ``false``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

TypingCallback = Callable[[str, str, str, bool], Coroutine[Any, Any, None]]


class Typing(Protocol):
    """Where typing state lives: this process (below) or Redis (``typing_redis.py``)."""

    async def set(self, room_id: str, user_id: str, username: str, is_typing: bool) -> bool: ...
    def active(self, room_id: str, user_id: str) -> bool: ...
    def close(self) -> None: ...


class TypingTracker:
    def __init__(self, on_change: TypingCallback, expiry: float = 5.0) -> None:
        self._on_change = on_change
        self._expiry = expiry
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def set(self, room_id: str, user_id: str, username: str, is_typing: bool) -> bool:
        """Record the state; whether the room is told (only on a change)."""
        key = (room_id, user_id)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if is_typing:
            self._timers[key] = asyncio.get_running_loop().call_later(
                self._expiry, self._expire, room_id, user_id, username
            )
            if timer is None:
                await self._on_change(room_id, user_id, username, True)
                return True
            return False
        if timer is not None:
            await self._on_change(room_id, user_id, username, False)
            return True
        return False

    def active(self, room_id: str, user_id: str) -> bool:
        return (room_id, user_id) in self._timers

    def _expire(self, room_id: str, user_id: str, username: str) -> None:
        self._timers.pop((room_id, user_id), None)
        task = asyncio.get_running_loop().create_task(
            self._on_change(room_id, user_id, username, False)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
