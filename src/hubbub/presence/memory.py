"""Presence for one node, in memory: connection counts per user and one timer per departure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Literal

from hubbub.clock import Clock, Handle, LoopClock
from hubbub.presence.base import PresenceCallback, Status

log = logging.getLogger("hubbub.presence")


class _User:
    __slots__ = ("away", "conns", "offline_timer", "reported")

    def __init__(self) -> None:
        self.conns: set[str] = set()
        self.away = False
        self.offline_timer: Handle | None = None
        self.reported: Status = "offline"


class MemoryPresence:
    def __init__(self, grace: float = 10.0, *, clock: Clock | None = None) -> None:
        self._grace = grace
        self._clock: Clock = clock or LoopClock()
        self._users: dict[str, _User] = {}
        self._on_change: PresenceCallback | None = None
        self._changes: asyncio.Queue[tuple[str, Status]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def start(self, on_change: PresenceCallback) -> None:
        self._on_change = on_change
        self._worker = asyncio.get_running_loop().create_task(self._announce())

    async def _announce(self) -> None:
        """One worker, so a user's changes are announced in the order they happened; the
        changes of different users queued together are announced side by side (a connect
        storm's lookups then go to the store together)."""
        while True:
            queued = [await self._changes.get()]
            while not self._changes.empty():
                queued.append(self._changes.get_nowait())
            per_user: dict[str, list[Status]] = {}
            for user_id, status in queued:
                per_user.setdefault(user_id, []).append(status)
            await asyncio.gather(*(self._tell(u, s) for u, s in per_user.items()))

    async def _tell(self, user_id: str, statuses: list[Status]) -> None:
        for status in statuses:
            if self._on_change is None:
                return
            try:
                await self._on_change(user_id, status)
            except Exception:
                log.exception("presence change of %s not announced", user_id)

    async def close(self) -> None:
        for user in self._users.values():
            if user.offline_timer is not None:
                user.offline_timer.cancel()
        self._on_change = None
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    def _effective(self, user: _User) -> Status:
        if not user.conns and user.offline_timer is None:
            return "offline"
        return "away" if user.away else "online"

    def _report(self, user_id: str, user: _User) -> None:
        status = self._effective(user)
        if status == user.reported:
            return
        user.reported = status
        if status == "offline" and not user.away:
            self._users.pop(user_id, None)
        self._changes.put_nowait((user_id, status))

    async def connect(self, user_id: str, conn_id: str) -> None:
        user = self._users.get(user_id)
        if user is None:
            user = self._users[user_id] = _User()
        user.conns.add(conn_id)
        if user.offline_timer is not None:
            user.offline_timer.cancel()
            user.offline_timer = None
        self._report(user_id, user)

    async def disconnect(self, user_id: str, conn_id: str) -> None:
        user = self._users.get(user_id)
        if user is None or conn_id not in user.conns:
            return
        user.conns.discard(conn_id)
        if not user.conns and user.offline_timer is None:
            user.offline_timer = self._clock.call_later(self._grace, self._expire, user_id)

    def _expire(self, user_id: str) -> None:
        user = self._users.get(user_id)
        if user is None:
            return
        user.offline_timer = None
        if not user.conns:
            self._report(user_id, user)

    async def set_status(self, user_id: str, status: Literal["online", "away"]) -> Status:
        user = self._users.get(user_id)
        if user is None:
            user = self._users[user_id] = _User()
        user.away = status == "away"
        self._report(user_id, user)
        return self._effective(user)

    async def statuses(self, user_ids: Iterable[str]) -> dict[str, Status]:
        out: dict[str, Status] = {}
        for uid in user_ids:
            user = self._users.get(uid)
            out[uid] = "offline" if user is None else self._effective(user)
        return out
